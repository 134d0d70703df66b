"""The image tower of OpenAI CLIP ViT-B/32, in plain torch, for FID-C.

Parameter names follow OpenAI's state dict (`visual.conv1.weight` [768, 3, 32, 32],
`visual.class_embedding`, `visual.positional_embedding` [50, 768], `visual.ln_pre`,
`visual.transformer.resblocks.N.attn.in_proj_weight`, `...mlp.c_fc`, `visual.ln_post`,
`visual.proj` [768, 512]); `load_visual_state_dict` takes either the whole CLIP state dict
(text tower keys are ignored) or the visual keys alone, with or without the `visual.` prefix.

Input: images preprocessed as CLIP does (224², scaled to [0, 1], normalised with
CLIP_MEAN / CLIP_STD). Output: the 512-d image embedding before L2 normalisation (as in
clean-fid's `clip_vit_b_32` features).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from piti_cli.checkpoints.layout import key_mismatch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INPUT_SIZE = 224
PATCH = 32
WIDTH = 768
LAYERS = 12
HEADS = 12
EMBED_DIM = 512


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as CLIP does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = LayerNorm32(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * width, width))]
            )
        )
        self.ln_2 = LayerNorm32(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class CLIPVisual(nn.Module):
    """ViT-B/32 image encoder; `forward` maps (B, 3, 224, 224) normalised images to (B, 512)."""

    def __init__(self, width: int = WIDTH, layers: int = LAYERS, heads: int = HEADS,
                 patch: int = PATCH, resolution: int = INPUT_SIZE, output_dim: int = EMBED_DIM):
        super().__init__()
        grid = resolution // patch
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = LayerNorm32(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm32(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, width, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, g*g, width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0, :]) @ self.proj


def visual_state_dict(state: dict) -> dict:
    """Keep the image-tower entries of a CLIP state dict, without the `visual.` prefix."""
    if any(k.startswith("visual.") for k in state):
        return {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    return dict(state)


def load_visual_state_dict(model: CLIPVisual, state: dict) -> None:
    """Load strictly; raise ValueError naming the first missing / unexpected / mis-shaped key."""
    visual = visual_state_dict(state)
    expected = model.state_dict()
    mismatch = key_mismatch(visual, expected, prefix="visual.")
    if mismatch:
        raise ValueError(f"not a CLIP ViT-B/32 image tower: {mismatch}")
    model.load_state_dict({k: v.float() for k, v in visual.items()}, strict=True)
