"""Small random-weight feature extractors injected through --extractor-factory (no downloads)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from piti_cli.metrics.features import FeatureExtractor

DIMS = {"inception": 8, "clip": 6}


def _preprocess(image: np.ndarray) -> np.ndarray:
    small = Image.fromarray(image).resize((16, 16), resample=Image.BILINEAR)
    return np.asarray(small, dtype=np.float32).transpose(2, 0, 1) / 255.0


def make(kind: str, device) -> FeatureExtractor:
    gen = torch.Generator().manual_seed(1234 if kind == "inception" else 99)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, DIMS[kind]), torch.nn.Tanh())
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return FeatureExtractor(
        kind=kind, name=f"fake-{kind}", dim=DIMS[kind], weights_sha256="ab" * 32,
        preprocessing="fake: bilinear 16x16, /255", preprocess=_preprocess, network=net.to(device), device=device,
    )


def make_other(kind: str, device) -> FeatureExtractor:
    """Same shapes, different weights hash: statistics from `make` must be refused."""
    ex = make(kind, device)
    ex.weights_sha256 = "cd" * 32
    return ex
