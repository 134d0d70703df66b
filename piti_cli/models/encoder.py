"""PITI's condition encoder: maps a semantic input into the token space GLIDE's text used.

CNN stem (7×7 conv, then stride-2 3×3 convs, each with affine instance norm and LeakyReLU 0.2,
then a plain 3×3 conv) → (size/16)² tokens, a cls token appended *after* them, learned
positional embedding (entry 0 belongs to the cls token), transformer, final LayerNorm.
The cls output conditions the timestep embedding; the rest are extra keys/values for attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from piti_cli.models.config import EncoderConfig
from piti_cli.models.transformer import LayerNorm32, Transformer


@dataclass
class ConditionEmbedding:
    """What the decoder consumes: the pooled vector and the token sequence (channels first)."""

    pooled: torch.Tensor  # (B, width)      official name: xf_proj (before transformer_proj)
    tokens: torch.Tensor  # (B, width, L)   official name: xf_out

    def __len__(self) -> int:
        return self.pooled.shape[0]

    @staticmethod
    def cat(items: list["ConditionEmbedding"]) -> "ConditionEmbedding":
        return ConditionEmbedding(
            torch.cat([e.pooled for e in items]), torch.cat([e.tokens for e in items])
        )

    def repeat(self, n: int) -> "ConditionEmbedding":
        return ConditionEmbedding(self.pooled.repeat_interleave(n, 0), self.tokens.repeat_interleave(n, 0))


class ConditionStem(nn.Module):
    """The CNN stem; attributes conv1..convN+1 / norm1..normN as in the official files."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], width: int):
        super().__init__()
        self.depth = len(channels)
        prev = in_channels
        for i, ch in enumerate(channels, start=1):
            kernel, stride = (7, 1) if i == 1 else (3, 2)
            setattr(self, f"conv{i}", nn.Conv2d(prev, ch, kernel, stride=stride, padding=kernel // 2))
            setattr(self, f"norm{i}", nn.InstanceNorm2d(ch, affine=True))
            prev = ch
        setattr(self, f"conv{self.depth + 1}", nn.Conv2d(prev, width, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.depth + 1):
            x = getattr(self, f"conv{i}")(x)
            x = F.leaky_relu(getattr(self, f"norm{i}")(x), 0.2)
        return getattr(self, f"conv{self.depth + 1}")(x)


class ConditionEncoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.transformer = Transformer(config.width, config.layers, config.heads)
        self.cnn = ConditionStem(config.in_channels, config.stem_channels, config.width)
        self.final_ln = LayerNorm32(config.width)
        self.cls_token = nn.Parameter(torch.empty(1, 1, config.width))
        self.positional_embedding = nn.Parameter(torch.empty(1, config.num_tokens + 1, config.width))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The official code leaves these torch.empty; a small normal init is what training wants.
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)

    def forward(self, cond: torch.Tensor) -> ConditionEmbedding:
        size = self.config.input_size
        if cond.shape[-2:] != (size, size):
            raise ValueError(f"condition must be {size}×{size}, got {tuple(cond.shape[-2:])}")
        x = self.cnn(cond).flatten(2).transpose(1, 2)  # (B, L, width)
        pos = self.positional_embedding.to(x.dtype)
        x = x + pos[:, 1:]
        cls = (self.cls_token.to(x.dtype) + pos[:, :1]).expand(x.shape[0], -1, -1)
        x = self.final_ln(self.transformer(torch.cat([x, cls], dim=1)))
        return ConditionEmbedding(pooled=x[:, -1], tokens=x[:, :-1].transpose(1, 2))
