"""Tiny training fixtures: a scenes pack (`piti_cli.data.scenes`) and random tiny GLIDE files."""

from pathlib import Path

import pytest
import torch

from piti_cli.checkpoints.io import save_checkpoint
from piti_cli.data.scenes import make_scenes, write_pack
from piti_cli.models.config import get_preset
from piti_cli.models.piti import build_model
from piti_cli.train.config import TrainConfig


@pytest.fixture(scope="session")
def scenes_pack(tmp_path_factory) -> Path:
    images, masks = make_scenes(12, seed=3)
    return write_pack(tmp_path_factory.mktemp("pack") / "scenes.h5", images, masks)


def _glide_file(folder: Path, preset: str) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(get_preset(preset))
        # GLIDE zero-initialises its output layer; give it weights so every tensor gets gradients
        for p in model.parameters():
            if not p.detach().abs().sum():
                p.data.normal_(0, 0.02)
    path = folder / f"{preset}.pt"
    save_checkpoint(path, model.state_dict())
    return path


@pytest.fixture(scope="session")
def glide_base(tmp_path_factory) -> Path:
    return _glide_file(tmp_path_factory.mktemp("glide"), "glide-base-tiny")


@pytest.fixture(scope="session")
def glide_upsample(tmp_path_factory) -> Path:
    return _glide_file(tmp_path_factory.mktemp("glide_up"), "glide-upsample-tiny")


def base_config(pack, init, run_dir, **overrides) -> TrainConfig:
    kw = dict(data=str(pack), run_dir=str(run_dir), init=str(init), preset="glide-base-tiny", input_kind="mask",
              stage="joint", batch_size=4, max_steps=2, lr=1e-3, log_every=1, save_every=1000,
              device="cpu", uncond_p=0.3, seed=5)
    kw.update(overrides)
    return TrainConfig(**kw)
