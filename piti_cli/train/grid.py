"""Periodic sample grids during training: condition | sample (EMA model) | target, one row each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from piti_cli.io_utils import atomic_path


def condition_picture(cond: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) model condition -> (B, 3, S, S) picture in [-1, 1] (first 3 channels,
    a 1-channel sketch repeated)."""
    if cond.shape[1] == 1:
        return cond.repeat(1, 3, 1, 1)
    return cond[:, :3]


def fit(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return torch.nn.functional.interpolate(x.float(), size=(size, size), mode="nearest")


def save_grid(rows: list[torch.Tensor], path: str | Path) -> Path:
    """Rows of (B, 3, H, W) tensors in [-1, 1] -> one PNG, written atomically."""
    from PIL import Image

    size = max(r.shape[-1] for r in rows)
    rows = [fit(r.detach().cpu().float(), size) for r in rows]
    strips = [torch.cat(list(r), dim=2) for r in rows]  # (3, H, B*W)
    grid = torch.cat(strips, dim=1)
    array = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
    return path


def sample_grid(model, items: dict, settings, seed: int, path: str | Path) -> Path:
    """Sample the fixed preview items with `model` and save the grid."""
    from piti_cli.pipeline.cascade import sample_stage

    device = next(model.parameters()).device
    cond = items["condition"].to(device)
    low_res = items["low_res"].to(device) if "low_res" in items else None
    g = torch.Generator(device=device).manual_seed(seed)
    samples = sample_stage(model, cond, settings, g, low_res=low_res)
    rows = [condition_picture(items["condition"])]
    if low_res is not None:
        rows.append(low_res)
    rows += [samples, items["image"]]
    return save_grid(rows, path)
