"""Respacing: keep a subset of an N-step process's timesteps (fewer sampling steps).

Spec strings (improved-DDPM ``space_timesteps`` conventions):

- ``"250"`` / ``"10,10,3,2,2"``: split the N steps into len(list) equal sections
  (the first N mod len sections one step longer) and take that many steps from
  each, evenly strided with fractional stride (size−1)/(count−1) and Python
  ``round``; a single number is one section, so it includes 0 and N−1.
- ``"ddimK"``: the DDIM paper's integer stride: ``range(0, N, s)`` for the
  smallest s giving exactly K steps (starts at 0, does not reach N−1 in general).
- ``"fast27"``: ``"10,10,3,2,2"`` with step N−1 replaced by N−3.
- ``""`` (or None): keep every step.

A respaced process has betas recomputed from ᾱ at the kept steps,
β'_i = 1 − ᾱ[k_i] / ᾱ[k_{i−1}], so its ᾱ equals the original ᾱ at those steps.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import Tensor

from .gaussian import GaussianDiffusion
from .schedules import get_beta_schedule


def _sections(num_steps: int, counts: Sequence[int]) -> set[int]:
    size_per, extra = divmod(num_steps, len(counts))
    start = 0
    steps: set[int] = set()
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if count < 0 or size < count:
            raise ValueError(f"cannot take {count} steps from a section of {size} steps")
        stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
        steps.update(start + round(j * stride) for j in range(count))
        start += size
    return steps


def space_timesteps(num_steps: int, spec: str | Sequence[int] | None) -> list[int]:
    """Sorted list of the original timesteps kept by ``spec`` (see module doc)."""
    if spec is None or spec == "":
        return list(range(num_steps))
    if isinstance(spec, str):
        spec = spec.strip()
        if spec.startswith("ddim"):
            want = int(spec[len("ddim"):])
            for stride in range(1, num_steps):
                if len(range(0, num_steps, stride)) == want:
                    return list(range(0, num_steps, stride))
            raise ValueError(f"cannot take exactly {want} steps of {num_steps} with an integer stride")
        if spec == "fast27":
            steps = _sections(num_steps, [10, 10, 3, 2, 2])
            steps.discard(num_steps - 1)
            steps.add(num_steps - 3)
            return sorted(steps)
        try:
            counts = [int(part) for part in spec.split(",")]
        except ValueError:
            raise ValueError(f"bad respacing {spec!r}: expected e.g. '250', 'ddim50', 'fast27' or '10,10,3'") from None
    else:
        counts = [int(c) for c in spec]
    return sorted(_sections(num_steps, counts))


def respace(process: GaussianDiffusion, spec: str | Sequence[int] | None) -> GaussianDiffusion:
    """A process that keeps only the steps of ``process`` chosen by ``spec``.

    Works on an already respaced process too: the new ``timestep_map`` refers to
    the same original process.
    """
    keep = space_timesteps(process.num_timesteps, spec)
    alpha_bar = process.alphas_cumprod[keep]
    prev = np.append(1.0, alpha_bar[:-1])
    betas = 1.0 - alpha_bar / prev
    return GaussianDiffusion(betas, process.timestep_map[keep], process.original_num_steps)


def make_process(
    schedule: str = "squaredcos_cap_v2", num_steps: int = 1000, respacing: str | Sequence[int] | None = None
) -> GaussianDiffusion:
    """The process GLIDE uses (cosine, 1000 steps) or another one, optionally respaced."""
    base = GaussianDiffusion(get_beta_schedule(schedule, num_steps))
    return base if respacing in (None, "") else respace(base, respacing)


def network_time(process: GaussianDiffusion, index: Tensor) -> Tensor:
    """Float timesteps (0..1000 scale) the network sees for respaced indices ``index``."""
    return process.network_t(index)
