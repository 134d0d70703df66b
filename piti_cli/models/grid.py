"""A shared position for image queries and condition keys (`UNetConfig.grid_attention`).

A departure from GLIDE/PITI, off in every official preset: the condition's L tokens are read
as a square G × G grid (row by row, as the encoder's CNN stem and the demo's captions order
them). Each attention head adds one fixed sin-cos code of a 2-D position to its queries
(the image position) and to the keys of the condition tokens (the cell's centre), so that
q·k rewards an image position for attending to the token of its own cell. Values and the
image's own keys are untouched and nothing is learned: the same weights work at any grid.

Positions are measured in cells of the token grid: the token of cell (a, b) sits at (a, b),
image position (i, j) of an H × W map at ((i + ½)·G/H − ½, (j + ½)·G/W − ½). A code is
[cos ω y | sin ω y | cos ω x | sin ω x] with F = head_channels // 4 frequencies per axis at
ω_k = π(k + ½)/F, spread over (0, π). Since Σ_k cos(ω_k d) = 0 for every integer d with
0 < |d| < 2F, two cells' codes (G ≤ 2F) score channels · ([same row] + [same column]) / 2:
the own cell highest, cells sharing a row or column half, all others 0; an image position
scores highest with the cell it lies in.
"""

from __future__ import annotations

import functools
import math

import torch


def _axis_code(centres: torch.Tensor, frequencies: int) -> torch.Tensor:
    """(n,) positions in F-grid units → (n, 2F) [cos | sin] codes."""
    omega = math.pi * (torch.arange(frequencies, dtype=torch.float64) + 0.5) / frequencies
    angle = centres.to(torch.float64)[:, None] * omega[None]
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=1)


@functools.lru_cache(maxsize=64)
def _code(rows: int, cols: int, grid: int, channels: int) -> torch.Tensor:
    """(rows·cols, channels) codes of the centres of a rows × cols partition of the unit square,
    row-major, in units of a grid × grid partition's cells, scaled to unit RMS per channel
    (zero-padded when channels is not a multiple of 4)."""
    f = channels // 4
    if f == 0:
        raise ValueError(f"grid attention needs at least 4 channels per head, got {channels}")
    y = _axis_code((torch.arange(rows) + 0.5) * grid / rows - 0.5, f)
    x = _axis_code((torch.arange(cols) + 0.5) * grid / cols - 0.5, f)
    code = torch.cat([y[:, None].expand(-1, cols, -1), x[None].expand(rows, -1, -1)], dim=-1).reshape(rows * cols, 4 * f)
    code = code * math.sqrt(channels / (2 * f))  # Σ cos² + sin² = f per axis → unit RMS over `channels`
    return torch.nn.functional.pad(code, (0, channels - 4 * f)).float()


def token_grid(length: int) -> int:
    """G for L = G² condition tokens; ValueError otherwise."""
    side = math.isqrt(length)
    if side * side != length:
        raise ValueError(f"grid attention needs a square number of condition tokens, got {length}")
    return side


def _rms(x: torch.Tensor) -> torch.Tensor:
    """Per sample and head RMS of (B, heads, L, ch), detached, in float32."""
    return x.detach().float().pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()


def add_grid_position(q: torch.Tensor, cond_k: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """q (B, heads, H·W, ch) image queries, cond_k (B, heads, L, ch) condition keys, L = G².
    Returns both with the position codes added, each scaled by the tensor's own detached RMS
    (per sample and head, so a row's result never depends on the other rows of its batch)."""
    grid = token_grid(cond_k.shape[2])
    ch = q.shape[-1]
    q_code = _code(height, width, grid, ch).to(q.device)
    k_code = _code(grid, grid, grid, ch).to(q.device)
    q = (q.float() + _rms(q) * q_code).to(q.dtype)
    cond_k = (cond_k.float() + _rms(cond_k) * k_code).to(cond_k.dtype)
    return q, cond_k
