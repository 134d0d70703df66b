import pytest
import torch

from piti_cli.checkpoints.io import save_checkpoint
from piti_cli.models.config import PRESETS
from piti_cli.models.piti import build_model


def random_checkpoint(path, preset, seed):
    """A file in the official layout with random weights (zero-initialised layers perturbed)."""
    torch.manual_seed(seed)
    state = build_model(PRESETS[preset]).state_dict()
    state = {k: v + 0.02 * torch.randn_like(v) if v.dtype.is_floating_point else v for k, v in state.items()}
    save_checkpoint(path, state)
    return path


@pytest.fixture(scope="session")
def tiny_mask_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return (random_checkpoint(root / "base.pt", "piti-base-mask-tiny", 0),
            random_checkpoint(root / "up.pt", "piti-upsample-mask-tiny", 1))


@pytest.fixture(scope="session")
def tiny_sketch_base(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("sk") / "base.pt", "piti-base-sketch-tiny", 2)
