"""Whole models: PITI (condition encoder + GLIDE decoder) and GLIDE itself (text + decoder).

`build_model(config)` builds either from a preset; state-dict names match the official files.
"""

from __future__ import annotations

import torch
from torch import nn

from piti_cli.models.config import ModelConfig, TextConfig
from piti_cli.models.encoder import ConditionEmbedding, ConditionEncoder
from piti_cli.models.transformer import LayerNorm32, Transformer
from piti_cli.models.unet import UNet


class PitiModel(nn.Module):
    """ε-prediction network conditioned on a semantic input (mask, sketch, depth+normals)."""

    compiled = False  # set by `pipeline.cascade.prepare(compile=True)`: the call is torch.compile'd

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.family != "piti":
            raise ValueError(f"{config.name} is not a PITI preset")
        self.config = config
        self.encoder = ConditionEncoder(config.encoder)
        self.decoder = UNet(config.unet)

    @property
    def condition_shape(self) -> tuple[int, int, int]:
        e = self.config.encoder
        return (e.in_channels, e.input_size, e.input_size)

    def null_condition(self, batch: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """The unconditional input the official models were trained with: all ones."""
        return torch.ones(batch, *self.condition_shape, device=device, dtype=dtype)

    def encode(self, cond: torch.Tensor) -> ConditionEmbedding:
        """Run the condition encoder once; reuse the result at every sampling step."""
        return self.encoder(cond)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        low_res: torch.Tensor | None = None,
        embedding: ConditionEmbedding | None = None,
    ) -> torch.Tensor:
        if embedding is None:
            if cond is None:
                raise ValueError("give either cond or a precomputed embedding")
            embedding = self.encode(cond)
        return self.decoder(x, t, embedding.pooled, embedding.tokens, low_res)


class GlideModel(UNet):
    """GLIDE's text-conditional UNet (`base.pt`, `upsample.pt`): decoder tensors at top level,
    plus the text transformer that PITI replaces. Kept so GLIDE files can be read strictly."""

    def __init__(self, config: ModelConfig):
        if config.family != "glide":
            raise ValueError(f"{config.name} is not a GLIDE preset")
        super().__init__(config.unet)
        self.model_config = config
        text: TextConfig = config.text
        self.token_embedding = nn.Embedding(text.vocab_size, text.width)
        self.positional_embedding = nn.Parameter(torch.empty(text.context_length, text.width))
        self.padding_embedding = nn.Parameter(torch.empty(text.context_length, text.width))
        self.transformer = Transformer(text.width, text.layers, text.heads)
        self.final_ln = LayerNorm32(text.width)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.padding_embedding, std=0.01)

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> ConditionEmbedding:
        """tokens: (B, ctx) BPE ids; mask: (B, ctx) bool, False where padded."""
        x = self.token_embedding(tokens) + self.positional_embedding[None]
        x = torch.where(mask[..., None], x, self.padding_embedding[None].to(x.dtype))
        x = self.final_ln(self.transformer(x))
        return ConditionEmbedding(pooled=x[:, -1], tokens=x.transpose(1, 2))

    def forward(self, x, t, tokens=None, mask=None, low_res=None):  # type: ignore[override]
        emb = self.encode_text(tokens, mask)
        return super().forward(x, t, emb.pooled, emb.tokens, low_res)


def build_model(config: ModelConfig) -> nn.Module:
    return PitiModel(config) if config.family == "piti" else GlideModel(config)
