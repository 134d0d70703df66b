"""The batch size chosen from free memory (`pipeline.batching`) on a real card."""

import pytest
import torch

from piti_cli.models.config import get_preset
from piti_cli.models.piti import build_model
from piti_cli.pipeline.batching import HEADROOM, _stage_peak, auto_rows
from piti_cli.pipeline.cascade import BASE_DEFAULTS, UPSAMPLE_DEFAULTS, prepare
from tests.cuda.conftest import CUDA

pytestmark = [*CUDA, pytest.mark.slow]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_chosen_batch_fits_and_its_peak_is_as_predicted(precision):
    device = torch.device("cuda")
    base = prepare(build_model(get_preset("piti-base-mask")), device, precision)
    up = prepare(build_model(get_preset("piti-upsample-mask")), device, precision)
    guided = BASE_DEFAULTS.__class__(guidance=3.0)
    free, _ = torch.cuda.mem_get_info(device)
    rows = auto_rows(base, up, guided, UPSAMPLE_DEFAULTS, device, 10_000)
    assert rows >= 2
    for model, settings in ((base, guided), (up, UPSAMPLE_DEFAULTS)):
        one, two = (_stage_peak(model, settings, n, device, 64) for n in (1, 2))
        peak = _stage_peak(model, settings, rows, device, 64)
        predicted = one + (rows - 1) * (two - one)
        assert peak <= HEADROOM * free and abs(peak - predicted) <= 0.15 * predicted, (peak, predicted)
