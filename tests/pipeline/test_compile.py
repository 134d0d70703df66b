"""`--compile`: the torch.compile'd per-step call samples what the eager one does."""

import pytest
import torch

from piti_cli.models.config import get_preset
from piti_cli.models.piti import build_model
from piti_cli.pipeline.cascade import StageSettings, prepare, sample_stage


@pytest.mark.slow
def test_a_compiled_base_samples_what_the_eager_one_does():
    """Inductor on the CPU (the CUDA-graph mode is exercised by benchmarks/dataset_speed.py on a
    GPU): a guided three-step run, random weights everywhere, within 1e-5 of eager."""
    torch.manual_seed(0)
    model = build_model(get_preset("piti-base-mask-tiny"))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    eager, compiled = build_model(model.config), build_model(model.config)
    eager.load_state_dict(model.state_dict())
    compiled.load_state_dict(model.state_dict())
    cpu = torch.device("cpu")
    eager, compiled = prepare(eager, cpu, "fp32"), prepare(compiled, cpu, "fp32", compile=True)
    assert compiled.compiled and not eager.compiled
    size = model.config.encoder.input_size
    cond = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    settings = StageSettings(steps="3", guidance=3.0, normalized=True)
    a = sample_stage(eager, cond, settings, torch.Generator().manual_seed(2))
    b = sample_stage(compiled, cond, settings, torch.Generator().manual_seed(2))
    assert a.shape == b.shape == (2, 3, 64, 64)
    assert (a - b).abs().max().item() <= 1e-5
