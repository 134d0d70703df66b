"""Per-picture noise: every output draws x_T and each step's noise from its own generator.

A picture's noise depends only on its seed (from `piti_cli.runtime.derive_seed` over the
run's seed, the condition id and the sample index), never on its position in a batch, so the
same picture comes out at any batch size, in any process, on a rerun. Draws are made on the
CPU and moved to the sampling device: the noise is the same on every device.
"""

from __future__ import annotations

from typing import Sequence

import torch

from piti_cli.runtime import derive_seed


class RowNoise:
    """One `torch.Generator` per batch row; `noise_sampler(x)` stacks one draw per row."""

    def __init__(self, seeds: Sequence[int]):
        self.seeds = list(seeds)
        self.generators = [torch.Generator().manual_seed(s) for s in self.seeds]

    @classmethod
    def for_pictures(cls, seed: int, pictures: Sequence[tuple[str, int]], stage: str) -> "RowNoise":
        """Rows for (condition id, sample index) pictures in one stage ("base", "upsampler")."""
        return cls([derive_seed(seed, cond_id, index, stage) for cond_id, index in pictures])

    def _draw(self, shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        rows = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in self.generators]
        return torch.stack(rows).to(device=device, dtype=dtype)

    def initial(self, shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        """x_T (B, *shape) in float32: row i from generator i."""
        return self._draw(shape, torch.float32, torch.device(device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(self.generators):
            raise ValueError(f"noise for {len(self.generators)} rows asked for a batch of {x.shape[0]}")
        return self._draw(x.shape[1:], x.dtype, x.device)
