"""Every fixed set of names a user chooses from, in one place (imports nothing heavy).

The CLI's options take these `Literal`s as their choices (Typer lists them in `--help` and
refuses anything else); each core table is keyed by the same names and checks so at import:
a sampler, a precision or a timestep sampler is added by one entry here and one row in its
table (DEVELOPING.md, "Where a new … goes").
"""

from __future__ import annotations

from typing import Literal, get_args

Sampler = Literal["ancestral", "ddim", "dpmpp-2m", "dpmpp-3m"]  # piti_cli.diffusion.samplers.SAMPLERS
Precision = Literal["fp32", "bf16", "fp16"]  # piti_cli.runtime.PRECISIONS
SamplePrecision = Literal["auto", "fp32", "bf16", "fp16"]  # auto: piti_cli.runtime.resolve_precision
TimestepSampler = Literal["uniform", "loss-second-moment", "high-noise"]  # diffusion.timestep_samplers
NllCdf = Literal["tanh", "exact"]  # piti_cli.diffusion.losses.NORMAL_CDFS

SAMPLERS: tuple[str, ...] = get_args(Sampler)
PRECISIONS: tuple[str, ...] = get_args(Precision)
TIMESTEP_SAMPLERS: tuple[str, ...] = get_args(TimestepSampler)
NLL_CDFS: tuple[str, ...] = get_args(NllCdf)


def check_table(table, names: tuple[str, ...], what: str) -> None:
    """Raise at import when a core table's keys are not exactly the names users choose from."""
    if tuple(table) != names:
        raise AssertionError(f"{what}: table {tuple(table)} != choices {names} (piti_cli/choices.py)")
