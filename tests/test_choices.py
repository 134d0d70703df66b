"""One home per choice: the CLI's Literals are `piti_cli.choices`, and every core table is keyed
by exactly those names (checked at import by `check_table`, which this test makes fail)."""

from typing import get_args

import pytest

from piti_cli import choices
from piti_cli.choices import check_table


def test_core_tables_are_keyed_by_the_choices():
    from piti_cli.cli import options
    from piti_cli.diffusion.losses import NORMAL_CDFS
    from piti_cli.diffusion.samplers import SAMPLERS
    from piti_cli.diffusion.timestep_samplers import TIMESTEP_SAMPLERS
    from piti_cli.runtime import PRECISIONS

    assert tuple(SAMPLERS) == get_args(options.Sampler) == choices.SAMPLERS
    assert tuple(PRECISIONS) == get_args(options.Precision) == choices.PRECISIONS
    assert ("auto", *PRECISIONS) == get_args(options.SamplePrecision)
    assert tuple(TIMESTEP_SAMPLERS) == get_args(options.TimestepSampler)
    assert tuple(NORMAL_CDFS) == get_args(options.NllCdf)


def test_a_table_that_drifts_from_its_choices_fails_at_import():
    with pytest.raises(AssertionError, match="choices"):
        check_table({"ancestral": None, "euler": None}, choices.SAMPLERS, "samplers")
