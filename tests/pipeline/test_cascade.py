import copy

import pytest
import torch

from piti_cli.checkpoints.convert import load_model
from piti_cli.pipeline.cascade import StageSettings, one_row_per_call, quantize_8bit, sample_cascade, sample_stage


def test_quantize_8bit_truncates_like_the_official_code():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 0.99999, 1.0, 1.5])
    expected = torch.tensor([int(127.5 * (v + 1)) / 127.5 - 1 for v in [-1.0, -0.999, 0.0, 0.5, 0.99999, 1.0, 1.0]])
    assert torch.allclose(quantize_8bit(x), expected)


def test_condition_encoder_runs_once_per_batch_not_per_step(tiny_mask_models):
    model, _ = load_model(tiny_mask_models[0])
    rows = []
    model.encoder.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    cond = torch.rand(2, 3, 64, 64) * 2 - 1
    for steps in ("3", "6"):
        rows.clear()
        out = sample_stage(model, cond, StageSettings(steps=steps, guidance=2.0), torch.Generator().manual_seed(0))
        assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1.0 + 1e-6
        # cond and null condition encoded once: 4 rows (fp32 on the CPU: one row per call)
        assert sum(rows) == 4 and rows == ([1] * 4 if one_row_per_call(model) else [4])


def test_cascade_shapes_and_seed_determinism(tiny_mask_models):
    base, _ = load_model(tiny_mask_models[0])
    up, _ = load_model(tiny_mask_models[1])
    cond = torch.rand(1, 3, 64, 64) * 2 - 1
    settings = StageSettings(steps="3")
    up_settings = StageSettings(steps="2", guidance=1.0, init_scale=0.997)
    a = sample_cascade(base, up, cond, torch.Generator().manual_seed(5), settings, up_settings)
    b = sample_cascade(base, up, cond, torch.Generator().manual_seed(5), settings, up_settings)
    c = sample_cascade(base, up, cond, torch.Generator().manual_seed(6), settings, up_settings)
    assert a[0].shape == (1, 3, 64, 64) and a[1].shape == (1, 3, 256, 256)
    assert torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])


def _prepared_matches_loaded(path, size, batch):
    from piti_cli.pipeline.cascade import prepare

    reference = load_model(path)[0].eval()
    prepared = prepare(copy.deepcopy(reference), torch.device("cpu"), "fp32")
    assert prepared.decoder.input_blocks[0][0].weight.is_contiguous()
    g = torch.Generator().manual_seed(0)
    x, cond = torch.randn(batch, 3, size, size, generator=g), torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1
    low = torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1 if size == 256 else None
    t = torch.tensor([10, 900][:batch])
    with torch.no_grad():  # the same layout, so the same kernels: bit-identical
        assert torch.equal(prepared(x, t, cond, low_res=low), reference(x, t, cond, low_res=low))
    return reference


def test_prepare_keeps_fp32_faithful_and_bf16_channels_last(tiny_mask_models):
    from piti_cli.pipeline.cascade import prepare

    reference = _prepared_matches_loaded(tiny_mask_models[0], 64, 2)
    fast = prepare(reference, torch.device("cpu"), "bf16")
    assert fast.decoder.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_prepare_keeps_fp32_upsampler_faithful(tiny_mask_models):
    _prepared_matches_loaded(tiny_mask_models[1], 256, 1)


@pytest.mark.slow
def test_guidance_interval_skips_the_null_half_outside(tiny_mask_models):
    from piti_cli.diffusion.respace import space_timesteps

    model, _ = load_model(tiny_mask_models[0])
    calls = []  # (network t, rows) per decoder call; fp32 on the CPU calls it one row at a time
    model.decoder.register_forward_hook(lambda mod, args, out: calls.append((float(args[1][0]), out.shape[0])))
    cond = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    steps = model.config.diffusion.steps
    net_t = [k * 1000.0 / steps for k in reversed(space_timesteps(steps, "4"))]
    lo, hi = 150.0, 650.0
    runs = {}
    for interval in (None, (0.0, 1000.0), (lo, hi)):
        calls.clear()
        settings = StageSettings(sampler="ddim", steps="4", guidance=2.0, guidance_interval=interval)
        runs[interval] = sample_stage(model, cond, settings, torch.Generator().manual_seed(3))
        batches = [sum(n for t, n in calls if t == step_t) for step_t in dict.fromkeys(t for t, _ in calls)]
        expected = [2 if interval is None or interval[0] <= t <= interval[1] else 1 for t in net_t]
        assert batches == expected
    assert 1 in batches and 2 in batches
    assert torch.equal(runs[None], runs[(0.0, 1000.0)])
    assert not torch.equal(runs[None], runs[(lo, hi)])


def test_upsampler_start_noises_the_enlarged_low_res_to_its_step(tiny_mask_models):
    """--upsample-start T: the first network input is √ᾱ_T·bilinear(low) + √(1−ᾱ_T)·0.997·ε
    (ᾱ from the schedule's betas in float64), then only the steps at t ≤ T run."""
    import numpy as np
    import torch.nn.functional as F

    from piti_cli.diffusion.respace import space_timesteps
    from piti_cli.diffusion.schedules import get_beta_schedule

    up, _ = load_model(tiny_mask_models[1])
    seen = []  # (network t, x) per decoder call
    up.decoder.register_forward_pre_hook(lambda mod, args: seen.append((float(args[1][0]), args[0][:, :3].clone())))
    g = torch.Generator().manual_seed(4)
    cond, low = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1, torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    eps = torch.randn(1, 3, 256, 256, generator=g)
    steps = up.config.diffusion.steps
    settings = StageSettings(steps="fast27", guidance=1.0, init_scale=0.997, start=500 * steps // 1000)
    out = sample_stage(up, cond, settings, torch.Generator().manual_seed(0), low, noise=eps)
    kept = [k for k in space_timesteps(steps, "fast27") if k <= settings.start]
    assert [t for t, _ in seen] == [k * 1000.0 / steps for k in reversed(kept)]
    alpha_bar = np.cumprod(1 - get_beta_schedule(up.config.diffusion.schedule, steps))[kept[-1]]
    enlarged = F.interpolate(low.double(), size=(256, 256), mode="bilinear", align_corners=False)
    expected = alpha_bar ** 0.5 * enlarged + (1 - alpha_bar) ** 0.5 * 0.997 * eps.double()
    torch.testing.assert_close(seen[0][1].double(), expected, rtol=0, atol=1e-5)
    assert out.shape == (1, 3, 256, 256) and torch.isfinite(out).all()
    with pytest.raises(Exception, match="low-res"):
        sample_stage(up, cond, settings, torch.Generator().manual_seed(0))
