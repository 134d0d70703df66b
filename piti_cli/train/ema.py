"""Exponential moving averages of the trained parameters.

After each optimizer step, for every trained parameter p and rate r:
    ema ← r · ema + (1 − r) · p
EMA copies are whole models (frozen parameters are copied once and never change), so an
EMA model samples and exports like the model itself.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, rates: tuple[float, ...]):
        self.rates = tuple(rates)
        self.models = [copy.deepcopy(model).eval().requires_grad_(False) for _ in self.rates]
        self._names = [n for n, p in model.named_parameters() if p.requires_grad]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for rate, ema in zip(self.rates, self.models):
            ema_params = dict(ema.named_parameters())
            for name in self._names:
                ema_params[name].lerp_(params[name].detach(), 1.0 - rate)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {str(rate): ema.state_dict() for rate, ema in zip(self.rates, self.models)}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for rate, ema in zip(self.rates, self.models):
            ema.load_state_dict(state[str(rate)])
