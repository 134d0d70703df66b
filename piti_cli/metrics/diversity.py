"""Sample diversity: mean pairwise LPIPS between samples of the same condition.

Groups come from a folder: each sub-folder holding >= 2 images is one condition; in a flat
folder, files group by the stem before the last `_` (`0007_s0.png`, `0007_s1.png` → `0007`).
The score is the mean over groups of the mean LPIPS over all unordered pairs in the group.

The lpips package ships its linear calibration layers; the AlexNet/VGG backbone it would
download from torchvision is instead loaded from a user file (`backbone_weights`, a
torchvision `alexnet`/`vgg16` state dict), or left random for tests (`random_backbone`).
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Callable

import lpips
import numpy as np
import torch

from piti_cli.data.images import IMAGE_SUFFIXES as IMAGE_EXTENSIONS
from piti_cli.data.images import png_text, read_image, to_unit
from piti_cli.errors import CheckpointError, InputError, OfflineError

BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def _condition_of(path: Path) -> str:
    """The condition a flat folder's picture was sampled from: the `condition` its piti record
    names (`piti sample` writes COND.png for one sample, so `scene_0.png` is scene_0's), else
    the name before the last `_` (COND_k.png)."""
    try:
        record = json.loads(png_text(path).get("piti", "null"))
    except ValueError:
        record = None
    if isinstance(record, dict) and isinstance(record.get("condition"), str):
        return record["condition"]
    return path.stem.rsplit("_", 1)[0] if "_" in path.stem else path.stem


def group_samples(folder: str | Path) -> dict[str, list[Path]]:
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    groups: dict[str, list[Path]] = defaultdict(list)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if subdirs:
        for d in subdirs:
            groups[d.name] = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        for p in sorted(root.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
                groups[_condition_of(p)].append(p)
    usable = {k: v for k, v in groups.items() if len(v) >= 2}
    if not usable:
        raise InputError(
            f"{root}: no condition with 2 or more samples (use one sub-folder per condition, "
            "or names like COND_0.png, COND_1.png as `piti sample -n 2` writes them)"
        )
    return usable


def build_lpips(net: str = "alex", backbone_weights: str | None = None, random_backbone: bool = False, device="cpu"):
    """An lpips.LPIPS model without any download."""
    if net not in BACKBONE_FILES:
        raise InputError(f"unknown LPIPS backbone {net!r}; choose alex or vgg")
    if not random_backbone and not backbone_weights:
        raise OfflineError(
            f"LPIPS needs the torchvision {net} backbone: pass --backbone-weights PATH "
            f"(torchvision's {BACKBONE_FILES[net]}, e.g. from ~/.cache/torch/hub/checkpoints/)"
        )
    with warnings.catch_warnings():  # torchvision's `pretrained=` deprecation, inside lpips
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    if backbone_weights:
        path = Path(backbone_weights)
        if not path.is_file():
            raise InputError(f"{path}: backbone weights not found")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(f"{path}: cannot read state dict ({type(err).__name__})") from None
        _load_backbone(model.net, state, path)
    return model.eval().to(device)


def _load_backbone(slices, state: dict, path: Path) -> None:
    """torchvision `features.I.*` keys → lpips `sliceK.I.*` (lpips keeps torchvision's indices)."""
    target = slices.state_dict()
    by_index = {k.split(".", 1)[1]: k for k in target}  # "I.weight" -> "sliceK.I.weight"
    mapped = {}
    for key, value in state.items():
        if key.startswith("features."):
            rest = key[len("features."):]
            if rest in by_index:
                mapped[by_index[rest]] = value
    missing = [k for k in target if k not in mapped]
    if missing:
        raise CheckpointError(f"{path}: not a torchvision backbone for LPIPS ({len(missing)} tensors missing, e.g. {missing[0]})")
    for k, v in mapped.items():
        if tuple(v.shape) != tuple(target[k].shape):
            raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(target[k].shape)}")
    slices.load_state_dict(mapped, strict=True)


def lpips_diversity(
    groups: dict[str, list[Path]],
    model,
    device="cpu",
    max_pairs: int | None = None,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Mean pairwise LPIPS per group and overall; images are scaled to [-1, 1] as lpips expects."""
    pairs_by_group = {}
    for name, files in groups.items():
        pairs = list(itertools.combinations(range(len(files)), 2))
        pairs_by_group[name] = pairs[:max_pairs] if max_pairs else pairs
    total = sum(len(p) for p in pairs_by_group.values())
    done = 0
    per_group = {}
    with torch.inference_mode():
        for name, files in groups.items():
            imgs = [read_image(f, "RGB") for f in files]
            shapes = {im.shape for im in imgs}
            if len(shapes) != 1:
                raise InputError(f"{files[0].parent}: samples of condition {name!r} differ in size ({sorted(shapes)})")
            tensor = torch.from_numpy(np.stack([to_unit(im) for im in imgs])).to(device)
            values = []
            pairs = pairs_by_group[name]
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                a = tensor[[i for i, _ in chunk]]
                b = tensor[[j for _, j in chunk]]
                values.append(model(a, b).reshape(-1).double().cpu().numpy())
                done += len(chunk)
                if progress:
                    progress(done, total)
            per_group[name] = float(np.concatenate(values).mean())
    return {
        "lpips_diversity": float(np.mean(list(per_group.values()))),
        "groups": len(per_group),
        "pairs": total,
        "per_group": per_group,
    }
