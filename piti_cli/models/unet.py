"""The GLIDE/ADM UNet decoder: maps (x_t, t, condition embedding) to ε and the variance.

`transformer_proj` (condition width → time-embedding width) belongs to the decoder, as in
GLIDE, so a GLIDE decoder and a PITI decoder have the same tensors. The super-resolution
variant concatenates the bilinearly upsampled low-res image to x_t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from piti_cli.models.config import UNetConfig
from piti_cli.models.layers import (
    AttentionBlock,
    GroupNorm32,
    ResBlock,
    TimestepSequential,
    timestep_embedding,
    zero_module,
)


def enlarge_low_res(low_res: torch.Tensor, size) -> torch.Tensor:
    """The upsampler's view of its low-res input at the output size (GLIDE's bilinear, corners
    not aligned): what the network concatenates to x_t, and where `--upsample-start` starts."""
    return F.interpolate(low_res, size, mode="bilinear", align_corners=False)


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config
        mc, emb_dim, groups = c.model_channels, c.time_embed_dim, c.norm_groups
        # Attention is placed by downsampling factor: resolution r ↔ factor image_size // r.
        attention_ds = {c.image_size // r for r in c.attention_resolutions}

        def res(ch_in: int, ch_out: int, resample: str | None = None) -> ResBlock:
            return ResBlock(ch_in, emb_dim, ch_out, c.dropout, groups, c.use_scale_shift_norm, resample)

        def attn(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, c.num_head_channels, c.context_channels, groups, c.grid_attention)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.transformer_proj = nn.Linear(c.context_channels, emb_dim)

        ch = int(c.channel_mult[0] * mc)
        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(c.in_channels, ch, 3, padding=1))])
        skip_channels = [ch]
        ds = 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [res(ch, int(mult * mc))]
                ch = int(mult * mc)
                if ds in attention_ds:
                    layers.append(attn(ch))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_channels.append(ch)
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(TimestepSequential(self._resampler(res, ch, "down")))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = TimestepSequential(res(ch, ch), attn(ch), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), int(mult * mc))]
                ch = int(mult * mc)
                if ds in attention_ds:
                    layers.append(attn(ch))
                if level and i == c.num_res_blocks:
                    layers.append(self._resampler(res, ch, "up"))
                    ds //= 2
                self.output_blocks.append(TimestepSequential(*layers))

        self.out = nn.Sequential(
            GroupNorm32(groups, ch, silu=True),
            nn.Identity(),
            zero_module(nn.Conv2d(ch, c.out_channels, 3, padding=1)),
        )

    def _resampler(self, res, ch: int, direction: str) -> nn.Module:
        if self.config.resblock_updown:
            return res(ch, ch, direction)
        return _PlainResample(direction)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        pooled: torch.Tensor | None = None,
        tokens: torch.Tensor | None = None,
        low_res: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, C, H, W) noisy image; t: (B,) float timesteps on the 0..1000 scale;
        pooled: (B, context) condition vector; tokens: (B, context, L) condition tokens;
        low_res: (B, 3, h, w) for the upsampler. Returns (B, out_channels, H, W)."""
        if self.config.super_res:
            if low_res is None:
                raise ValueError("the upsampler needs low_res")
            up = enlarge_low_res(low_res.to(x.dtype), x.shape[-2:])
            x = torch.cat([x, up], dim=1)
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels).to(self.time_embed[0].weight.dtype))
        if pooled is not None and self.config.pooled_condition:
            emb = emb + self.transformer_proj(pooled).to(emb.dtype)
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, tokens)
            hs.append(h)
        h = self.middle_block(h, emb, tokens)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb, tokens)
        return self.out(h)


class _PlainResample(nn.Module):
    """Parameter-free resampling for configs without res-block up/down-sampling."""

    def __init__(self, direction: str):
        super().__init__()
        self.direction = direction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.direction == "down" else F.interpolate(x, scale_factor=2, mode="nearest")
