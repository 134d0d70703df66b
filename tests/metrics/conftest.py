"""Small random-weight feature extractors in place of the built-in networks (no weight files).

`fake_extractors` replaces `piti_cli.metrics.features.build_extractor` for one test, so
`piti eval` runs offline; calling the fixture's value with `weights_sha256=...` makes the
extractors built afterwards report other weights (statistics of the first must be refused).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from piti_cli.metrics import features
from piti_cli.metrics.features import FeatureExtractor

DIMS = {"inception": 8, "clip": 6}


def _preprocess(image: np.ndarray) -> np.ndarray:
    small = Image.fromarray(image).resize((16, 16), resample=Image.BILINEAR)
    return np.asarray(small, dtype=np.float32).transpose(2, 0, 1) / 255.0


def make(kind: str, device, weights_sha256: str = "ab" * 32) -> FeatureExtractor:
    gen = torch.Generator().manual_seed(1234 if kind == "inception" else 99)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, DIMS[kind]), torch.nn.Tanh())
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return FeatureExtractor(
        kind=kind, name=f"fake-{kind}", dim=DIMS[kind], weights_sha256=weights_sha256,
        preprocessing="fake: bilinear 16x16, /255", preprocess=_preprocess, network=net.to(device), device=device,
    )


@pytest.fixture
def fake_extractors(monkeypatch):
    current = {"weights_sha256": "ab" * 32}

    def build(kind, device, weights=None, weights_dir=None):
        return make(kind, device, current["weights_sha256"])

    monkeypatch.setattr(features, "build_extractor", build)
    return lambda **changes: current.update(changes)
