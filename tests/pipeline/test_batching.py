import math

import torch

from piti_cli.pipeline.batching import CPU_ROWS, HEADROOM, MAX_ROWS, auto_rows, rows_that_fit
from piti_cli.pipeline.cascade import BASE_DEFAULTS, UPSAMPLE_DEFAULTS


def test_rows_that_fit_is_the_largest_batch_under_the_headroom():
    """Peaks of 300 and 400 bytes at 1 and 2 pictures: 200 fixed + 100 a picture."""
    for free in (1000, 1500, 2000, 10_000):
        n = rows_that_fit(free, 300, 400, cap=1000)
        assert 200 + 100 * n <= HEADROOM * free < 200 + 100 * (n + 1)
        assert n == math.floor((HEADROOM * free - 200) / 100)
    assert rows_that_fit(10 ** 12, 300, 400) == MAX_ROWS
    assert rows_that_fit(100, 300, 400) == 1  # nothing fits: one picture at a time, not zero


def test_on_a_cpu_the_batch_is_four_pictures_or_fewer(tiny_mask_models):
    from piti_cli.pipeline.models import load_pair

    base, _, up, _ = load_pair(str(tiny_mask_models[0]), str(tiny_mask_models[1]), False, None)
    cpu = torch.device("cpu")
    assert auto_rows(base, up, BASE_DEFAULTS, UPSAMPLE_DEFAULTS, cpu, 100) == CPU_ROWS
    assert auto_rows(base, up, BASE_DEFAULTS, UPSAMPLE_DEFAULTS, cpu, 3) == 3
