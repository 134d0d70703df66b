"""Feature extractors for FID/KID and the batched extraction loop.

A `FeatureExtractor` bundles a preprocessing function (uint8 HWC image → float32 CHW array),
a network (batch → (B, dim) features) and what identifies them in results and statistics
files (network name, weights sha256, preprocessing description). `build_extractor` makes
the built-in ones from their weight files (tests replace it with small random networks).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from piti_cli.errors import InputError
from piti_cli.metrics import images, networks

KINDS = ("inception", "clip")


@dataclass
class FeatureExtractor:
    kind: str  # "inception" | "clip": which statistics slot it fills
    name: str  # feature network, e.g. "inception-2015-12-05"
    dim: int
    weights_sha256: str
    preprocessing: str
    preprocess: Callable[[np.ndarray], np.ndarray]
    network: Callable  # torch.Tensor (B, 3, H, W) float32 on `device` -> (B, dim)
    device: object = "cpu"
    weights_file: str | None = None
    extra: dict = field(default_factory=dict)

    def identity(self) -> dict:
        """What a statistics file must agree on to be comparable with these features."""
        return {
            "feature_net": self.name,
            "dim": self.dim,
            "weights_sha256": self.weights_sha256,
            "preprocessing": self.preprocessing,
        }


def build_extractor(
    kind: str,
    device,
    weights: str | None = None,
    weights_dir: str | None = None,
) -> FeatureExtractor:
    """The built-in feature network of `kind`, its weights found and verified (`networks`)."""
    if kind not in KINDS:
        raise InputError(f"unknown feature network {kind!r}; choose inception or clip")
    registry_id, load, name, dim, description, preprocess = _NETWORKS[kind]
    found = networks.find_weights(registry_id, weights, weights_dir)
    return FeatureExtractor(
        kind=kind, name=name, dim=dim, weights_sha256=found.sha256, preprocessing=description,
        preprocess=preprocess, network=load(found.path).to(device), device=device,
        weights_file=str(found.path),
    )


# kind -> (registry id, loader, feature net name, feature dim, preprocessing text, preprocess)
_NETWORKS = {
    "inception": (networks.INCEPTION_ID, networks.load_inception, "inception-2015-12-05", 2048,
                  images.CLEAN_DESCRIPTION, images.clean_resize),
    "clip": (networks.CLIP_ID, networks.load_clip_visual, "clip-vit-b-32", 512,
             images.CLIP_DESCRIPTION, images.clip_preprocess),
}


def extract_features(
    source,
    extractor: FeatureExtractor,
    num: int | None = None,
    batch_size: int = 32,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Features (N, dim) float64 of the first `num` images of `source` (all when None)."""
    total = len(source) if num is None else min(num, len(source))
    out = np.empty((total, extractor.dim), dtype=np.float64)

    def load(i: int) -> np.ndarray:
        return extractor.preprocess(source.read(i))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, torch.inference_mode():
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            arrays = list(pool.map(load, range(start, stop)))
            batch = torch.from_numpy(np.stack(arrays)).to(extractor.device)
            feats = extractor.network(batch)
            feats = feats.reshape(feats.shape[0], -1).float().cpu().numpy()
            if feats.shape[1] != extractor.dim:
                raise InputError(f"{extractor.name}: produced {feats.shape[1]}-d features, expected {extractor.dim}")
            out[start:stop] = feats
            if progress:
                progress(stop, total)
    return out
