"""Which base and upsampler pair (`pipeline.models.load_pair`)."""

import pytest
import torch

from piti_cli.checkpoints.convert import load_model
from piti_cli.checkpoints.io import save_checkpoint
from piti_cli.checkpoints.registry import resolve
from piti_cli.errors import InputError
from piti_cli.pipeline.models import DEFAULT_UPSAMPLER, is_demo, load_pair


def test_a_base_finetuned_from_the_demo_takes_the_demo_upsampler(tmp_path, tiny_mask_models):
    """Other weights in the demo's architecture (as `piti finetune --init piti-demo-base`
    writes them) pair with the demo upsampler, by default and when named; a real base does not."""
    model, config = load_model(resolve("piti-demo-base"))
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path / "tuned.safetensors", state, config=config)
    for upsampler in (None, DEFAULT_UPSAMPLER):
        base, base_info, up, up_info = load_pair(str(tmp_path / "tuned.safetensors"), upsampler, False, None)
        assert not is_demo(base_info, "piti-demo-base") and is_demo(up_info, DEFAULT_UPSAMPLER)
        assert torch.equal(base.state_dict()[next(iter(state))], next(iter(state.values())))
    real_base = str(tiny_mask_models[0])  # the tiny preset without the demo's departures
    with pytest.raises(InputError, match="used only with its demo"):
        load_pair(real_base, DEFAULT_UPSAMPLER, False, None)
    with pytest.raises(InputError, match="needs its own upsampler"):
        load_pair(real_base, None, False, None)
