"""`piti weights inspect`: a file is compared with its own stored config when it has one."""

import torch

from piti_cli.checkpoints.inspect import inspect_checkpoint
from piti_cli.checkpoints.io import read_checkpoint, save_checkpoint
from piti_cli.checkpoints.registry import resolve


def test_the_demo_matches_its_stored_config_exactly_and_names_its_departures():
    report = inspect_checkpoint(resolve("piti-demo-base"))
    assert report.diff.exact and report.stored_config == "piti-base-mask-tiny"
    assert "unet.grid_attention=True" in report.departures


def test_a_tensor_that_is_not_its_stored_configs_shape_is_named(tmp_path):
    ck = read_checkpoint(resolve("piti-demo-base"))
    state = dict(ck.state_dict)
    state["encoder.positional_embedding"] = torch.zeros(3, 7)
    save_checkpoint(tmp_path / "odd.safetensors", state, config=ck.config)
    report = inspect_checkpoint(tmp_path / "odd.safetensors")
    assert not report.diff.exact and report.diff.mismatched == ("encoder.positional_embedding",)
