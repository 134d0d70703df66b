"""Per-picture noise, seeds, precision choice and the sampling progress estimate."""

import subprocess
import sys

import pytest
import torch

from piti_cli.errors import PitiError
from piti_cli.pipeline.noise import RowNoise
from piti_cli.pipeline.progress import SampleProgress, offset
from piti_cli.runtime import derive_seed, resolve_precision


def test_each_row_draws_from_its_own_generator_whatever_the_batch():
    seeds = [derive_seed(3, name, 0, "base") for name in ("a", "b")]
    alone, pair = RowNoise([seeds[1]]), RowNoise(seeds[::-1])
    x_alone, x_pair = alone.initial((3, 4, 4)), pair.initial((3, 4, 4))
    step_alone, step_pair = alone(x_alone), pair(torch.zeros(2, 3, 4, 4))
    g = torch.Generator().manual_seed(seeds[1])  # the same draws, made by hand
    expected_x, expected_step = torch.randn(3, 4, 4, generator=g), torch.randn(3, 4, 4, generator=g)
    assert torch.equal(x_alone[0], expected_x) and torch.equal(x_pair[0], expected_x)
    assert torch.equal(step_alone[0], expected_step) and torch.equal(step_pair[0], expected_step)
    assert not torch.equal(x_pair[1], expected_x)
    with pytest.raises(ValueError, match="2 rows"):
        pair(torch.zeros(3, 3, 4, 4))


def test_derive_seed_is_the_same_in_another_process_and_keeps_parts_apart():
    code = "from piti_cli.runtime import derive_seed; print(derive_seed(7, 'scene_0', 2, 'upsampler'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert int(other.stdout) == derive_seed(7, "scene_0", 2, "upsampler")
    assert 0 <= derive_seed(0) < 2**63
    assert derive_seed("a", "bc") != derive_seed("ab", "c")
    assert derive_seed(1, "x") != derive_seed("1", "x")


def test_precision_auto_follows_the_cpu_flags():
    flags = next((line.split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    with pytest.raises(PitiError, match="--precision fp8: choose one of auto, fp32, bf16, fp16"):
        resolve_precision("fp8", torch.device("cpu"))


def test_time_left_uses_each_stages_own_rate():
    """Base steps take 1 s per picture, upsampler steps 10 s: the estimate is their sum."""
    now = [0.0]
    reports = []
    tracker = SampleProgress(lambda d, t, **f: reports.append((d, t, f)), total=6, done=2, base_steps=4,
                             up_steps=2, clock=lambda: now[0])
    step = tracker.batch(2)  # 2 of the 4 pictures left; 2 more after this batch
    for k in range(1, 7):
        now[0] += 2 * (1.0 if k <= 4 else 10.0)
        step(k, 6)
    assert reports[3] == (2 + 2 * 4 / 6, 6, {"stage": "base", "eta": None})  # upsampler not timed yet
    done, total, fields = reports[4]
    assert fields["stage"] == "upsampler" and fields["eta"] == pytest.approx(1 * 2 * 10 + 2 * (4 * 1 + 2 * 10))
    tracker.finished(2)
    assert reports[-1] == (4, 6, {"stage": "upsampler", "eta": pytest.approx(2 * (4 * 1 + 2 * 10))})


def test_the_base_stage_has_a_time_left_from_the_stages_cost_ratio():
    """Before the upsampler has run, its rate is the base's times the FLOP ratio: base steps
    1 s per picture, ratio 10 → the same estimate the measured rates give later."""
    now, reports = [0.0], []
    tracker = SampleProgress(lambda d, t, **f: reports.append((d, t, f)), total=6, done=2, base_steps=4,
                             up_steps=2, clock=lambda: now[0], up_per_base=10.0)
    step = tracker.batch(2)
    now[0] += 2.0
    step(1, 6)
    assert reports[-1][2] == {"stage": "base", "eta": pytest.approx(2 * (3 * 1 + 2 * 10) + 2 * (4 * 1 + 2 * 10))}


def test_the_stage_cost_ratio_is_the_ratio_of_counted_flops(tiny_mask_models):
    """Counted on weightless meta copies, it equals the FLOPs of the real models' calls."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from piti_cli.pipeline.cascade import StageSettings, UPSAMPLE_DEFAULTS, make_denoiser, step_cost_ratio
    from piti_cli.pipeline.models import load_pair

    base, _, up, _ = load_pair(str(tiny_mask_models[0]), str(tiny_mask_models[1]), False, None)
    guided = StageSettings(guidance=3.0)

    def real(model, settings, low):
        cfg, counter = model.config, FlopCounterMode(display=False)
        enc, size = cfg.encoder.input_size, cfg.unet.image_size
        denoise = make_denoiser(model, torch.rand(1, 3, enc, enc), settings, low)
        # the math attention, as the meta device runs it (the CPU's fused kernel is not counted)
        with torch.no_grad(), counter, sdpa_kernel(SDPBackend.MATH):
            denoise(torch.randn(1, 3, size, size), torch.tensor([500.0]))
        return counter.get_total_flops()

    expected = real(up, UPSAMPLE_DEFAULTS, torch.rand(1, 3, 64, 64)) / real(base, guided, None)
    assert step_cost_ratio(base, up, guided, UPSAMPLE_DEFAULTS) == pytest.approx(expected, rel=1e-9)
    assert step_cost_ratio(base, None, guided, UPSAMPLE_DEFAULTS) is None


def test_offset_counts_a_part_inside_the_whole():
    seen = []
    part = offset(lambda d, t: seen.append((d, t)), 10, 30)
    part(3, 20)
    assert seen == [(13, 30)] and offset(None, 1, 2) is None
