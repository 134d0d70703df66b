"""The same networks and samplers on CUDA and on the CPU: fp32 agrees, bf16/fp16 stay close,
and a CUDA generator gives the same sample for the same seed."""

import pytest
import torch

from piti_cli.models.config import get_preset
from piti_cli.models.piti import build_model
from piti_cli.pipeline.cascade import StageSettings, prepare, sample_stage
from tests.cuda.conftest import CUDA, PRECISIONS

pytestmark = CUDA


@pytest.fixture(autouse=True)
def no_tf32():
    """True fp32 on the GPU (TF32 matmuls would differ from the CPU by ~1e-3)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm())


def random_model(preset: str):
    """Random weights everywhere: the zero-initialised output layers would hide errors."""
    torch.manual_seed(0)
    model = build_model(get_preset(preset)).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model


def on_cuda(model, precision: str):
    m = prepare(build_model(model.config), torch.device("cuda"), precision)
    m.load_state_dict(model.state_dict())
    return m


@pytest.mark.parametrize("preset", ["piti-base-mask-tiny", "piti-upsample-mask-tiny"])
def test_one_network_call_agrees_with_the_cpu(preset):
    model = random_model(preset)
    cfg = model.config
    size, enc = cfg.unet.image_size, cfg.encoder.input_size
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, size, size, generator=g)
    cond = torch.rand(2, cfg.encoder.in_channels, enc, enc, generator=g) * 2 - 1
    low = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1 if cfg.unet.super_res else None
    t = torch.tensor([100.0, 800.0])
    with torch.no_grad():
        ref = model(x, t, cond, low)
        out = {}
        for precision in PRECISIONS:
            m = on_cuda(model, precision)
            dtype = next(m.parameters()).dtype
            moved = [None if v is None else v.to("cuda", dtype) for v in (x, cond, low)]
            out[precision] = m(moved[0], t.cuda(), moved[1], moved[2]).float()
    assert rel(out["fp32"], ref) < 1e-4
    for precision in PRECISIONS[1:]:
        assert rel(out[precision], out["fp32"]) < 5e-2, precision


def test_a_whole_ddim_sample_agrees_with_the_cpu():
    model = random_model("piti-base-mask-tiny")
    cond = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    noise = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    settings = StageSettings(sampler="ddim", steps="ddim25", guidance=3.0)
    cpu = sample_stage(model, cond, settings, None, noise=noise)
    for precision, limit in zip(PRECISIONS, (1e-3, 0.2, 0.2)):
        gpu = sample_stage(on_cuda(model, precision), cond.cuda(), settings, None, noise=noise.cuda()).cpu()
        assert torch.isfinite(gpu).all() and rel(gpu, cpu) < limit, precision


def test_a_cuda_generator_repeats_its_sample():
    m = on_cuda(random_model("piti-base-mask-tiny"), "fp32")
    cond = (torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1).cuda()
    settings = StageSettings(sampler="ancestral", steps="50", guidance=1.3)
    a = sample_stage(m, cond, settings, torch.Generator("cuda").manual_seed(7))
    b = sample_stage(m, cond, settings, torch.Generator("cuda").manual_seed(7))
    assert torch.equal(a, b)
