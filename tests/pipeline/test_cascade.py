import torch

from piti_cli.checkpoints.convert import load_model
from piti_cli.pipeline.cascade import StageSettings, quantize_8bit, sample_cascade, sample_stage


def test_quantize_8bit_truncates_like_the_official_code():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 0.99999, 1.0, 1.5])
    expected = torch.tensor([int(127.5 * (v + 1)) / 127.5 - 1 for v in [-1.0, -0.999, 0.0, 0.5, 0.99999, 1.0, 1.0]])
    assert torch.allclose(quantize_8bit(x), expected)


def test_condition_encoder_runs_once_per_batch_not_per_step(tiny_mask_models):
    model, _ = load_model(tiny_mask_models[0])
    calls = []
    model.encoder.register_forward_hook(lambda *a: calls.append(1))
    cond = torch.rand(2, 3, 64, 64) * 2 - 1
    g = torch.Generator().manual_seed(0)
    out = sample_stage(model, cond, StageSettings(steps="6", guidance=2.0), g)
    assert out.shape == (2, 3, 64, 64)
    assert len(calls) == 1  # cond and null condition encoded together, once
    assert out.abs().max() <= 1.0 + 1e-6


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


def test_prepare_puts_cpu_weights_channels_last_without_changing_outputs(tiny_mask_models):
    from piti_cli.pipeline.cascade import prepare

    reference = load_model(tiny_mask_models[0])[0].eval()
    prepared = prepare(load_model(tiny_mask_models[0])[0], torch.device("cpu"), "fp32")
    conv = prepared.decoder.input_blocks[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    torch.manual_seed(0)
    x, cond, t = torch.randn(2, 3, 64, 64), torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([10, 900])
    with torch.no_grad():
        torch.testing.assert_close(prepared(x, t, cond), reference(x, t, cond), rtol=1e-5, atol=1e-5)
