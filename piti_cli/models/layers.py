"""Building blocks of the GLIDE/ADM UNet.

Module attribute names and `nn.Sequential` indices follow GLIDE's state-dict layout exactly
(`in_layers.2`, `emb_layers.1`, `out_layers.3`, `qkv`, `encoder_kv`, `proj_out`), so the
official checkpoints load with `strict=True` and nothing is renamed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from piti_cli.models.grid import add_grid_position


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos | sin] of (possibly fractional) timesteps, as in ADM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with float32 statistics, optionally followed by SiLU.

    GLIDE fuses the SiLU into the norm, which is why `in_layers` has an Identity at index 1.
    fp16 is normalised in float32 (its range overflows in the variance); bf16 and fp32 run
    natively, since the kernels accumulate in float32 anyway (3× faster than converting).
    """

    def __init__(self, groups: int, channels: int, silu: bool = False):
        super().__init__(groups, channels)
        self.silu = silu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float16:
            y = F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        else:
            # CPU kernels take float32 affine parameters with bf16 input; CUDA wants one dtype.
            w, b = (self.weight, self.bias) if x.device.type == "cpu" else (self.weight.to(x.dtype), self.bias.to(x.dtype))
            y = F.group_norm(x, self.num_groups, w, b, self.eps)
        if self.silu:
            y = F.silu(y, inplace=True)
        return y.to(x.dtype)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero-initialise the last layer of a residual branch so a new block starts as identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _resample(x: torch.Tensor, direction: str) -> torch.Tensor:
    if direction == "down":
        return F.avg_pool2d(x, 2)
    if direction == "up":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return x


class ResBlock(nn.Module):
    """Residual block with scale-shift norm from the timestep embedding; optionally resamples."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int | None = None,
        dropout: float = 0.0,
        groups: int = 32,
        scale_shift_norm: bool = True,
        resample: str | None = None,  # None | "up" | "down"
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.resample = resample
        self.scale_shift_norm = scale_shift_norm
        self.in_layers = nn.Sequential(
            GroupNorm32(groups, channels, silu=True),
            nn.Identity(),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if scale_shift_norm else out_channels)
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(groups, out_channels, silu=not scale_shift_norm),
            nn.SiLU() if scale_shift_norm else nn.Identity(),
            nn.Dropout(dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.resample:
            # Resample between the norm and the conv, on both the branch and the skip.
            h = self.in_layers[:-1](x)
            h = _resample(h, self.resample)
            x = _resample(x, self.resample)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        if self.scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Spatial self-attention that also attends to condition tokens (GLIDE's `encoder_kv`).

    Channel layout of `qkv` and `encoder_kv` is head-major ([q|k|v] per head), as GLIDE's
    legacy QKVAttention; the condition's keys/values come before the image's. `grid` adds the
    shared grid position of `piti_cli.models.grid` to the queries and condition keys (a
    departure, off in every official preset).
    """

    def __init__(self, channels: int, head_channels: int, context_channels: int | None, groups: int = 32,
                 grid: bool = False):
        super().__init__()
        self.grid = grid
        if channels % head_channels:
            raise ValueError(f"attention width {channels} is not a multiple of {head_channels}")
        self.num_heads = channels // head_channels
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.encoder_kv = nn.Conv1d(context_channels, channels * 2, 1) if context_channels else None
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, height, width = x.shape
        heads = self.num_heads
        qkv = self.qkv(self.norm(x).reshape(b, c, -1))
        # contiguous() before splitting: SDPA's fused CPU kernel needs unit-stride rows,
        # otherwise it falls back to the 3× slower math path.
        q, k, v = qkv.reshape(b, heads, 3 * (c // heads), -1).transpose(2, 3).contiguous().chunk(3, dim=-1)
        if context is not None and self.encoder_kv is not None:
            ekv = self.encoder_kv(context).to(q.dtype)
            ek, ev = ekv.reshape(b, heads, 2 * (c // heads), -1).transpose(2, 3).contiguous().chunk(2, dim=-1)
            if self.grid:
                q, ek = add_grid_position(q, ek, height, width)
            k = torch.cat([ek, k], dim=2)
            v = torch.cat([ev, v], dim=2)
        h = F.scaled_dot_product_attention(q, k, v)  # (b, heads, L, ch)
        h = h.transpose(2, 3).reshape(b, c, -1)
        return x + self.proj_out(h).reshape(b, c, height, width)


class TimestepSequential(nn.Sequential):
    """Runs its children, giving ResBlocks the embedding and attention the context."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, AttentionBlock):
                x = layer(x, context)
            else:
                x = layer(x)
        return x
