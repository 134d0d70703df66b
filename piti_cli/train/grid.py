"""Periodic sample grids during training: one column per preview item, rows condition |
(low-res input) | sample of the EMA model | target."""

from __future__ import annotations

from pathlib import Path

import torch

from piti_cli.data.images import condition_picture, make_grid, save_png, to_uint8
from piti_cli.pipeline.cascade import sample_stage


def sample_grid(model, items: dict, settings, seed: int, path: str | Path) -> Path:
    """Sample the fixed preview items with `model` and save the grid (PNG, atomically)."""
    device = next(model.parameters()).device
    cond = items["condition"].to(device)
    low_res = items["low_res"].to(device) if "low_res" in items else None
    g = torch.Generator(device=device).manual_seed(seed)
    samples = sample_stage(model, cond, settings, g, low_res=low_res)
    rows = [[condition_picture(c) for c in items["condition"].float().numpy()]]
    for batch in ([low_res] if low_res is not None else []) + [samples, items["image"]]:
        rows.append([to_uint8(x) for x in batch])
    return save_png(make_grid(rows), path)
