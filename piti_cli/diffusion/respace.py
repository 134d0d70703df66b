"""Respacing: keep a subset of an N-step process's timesteps (fewer sampling steps).

Respacing strings (improved-DDPM ``space_timesteps`` conventions):

- ``"250"`` / ``"10,10,3,2,2"``: split the N steps into len(list) equal sections
  (the first N mod len sections one step longer) and take that many steps from
  each, evenly strided with fractional stride (size−1)/(count−1) accumulated in
  float (``cur += stride``) and kept as Python ``round(cur)`` — GLIDE's rule, bit for
  bit; a single number is one section, so it includes 0 and N−1.
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
        cur = 0.0  # accumulated, not j·stride: the sums round differently for 278 of K = 2…1000
        for _ in range(count):
            steps.add(start + round(cur))
            cur += stride
        start += size
    return steps


def space_timesteps(num_steps: int, respacing: str | Sequence[int] | None) -> list[int]:
    """Sorted list of the original timesteps kept by ``respacing`` (see module doc)."""
    if respacing is None or respacing == "":
        return list(range(num_steps))
    if isinstance(respacing, str):
        respacing = respacing.strip()
        if respacing.startswith("ddim"):
            want = int(respacing[len("ddim"):])
            for stride in range(1, num_steps):
                if len(range(0, num_steps, stride)) == want:
                    return list(range(0, num_steps, stride))
            raise ValueError(f"cannot take exactly {want} steps of {num_steps} with an integer stride")
        if respacing == "fast27":
            steps = _sections(num_steps, [10, 10, 3, 2, 2])
            steps.discard(num_steps - 1)
            steps.add(num_steps - 3)
            return sorted(steps)
        try:
            counts = [int(part) for part in respacing.split(",")]
        except ValueError:
            raise ValueError(f"bad respacing {respacing!r}: expected e.g. '250', 'ddim50', 'fast27' or '10,10,3'") from None
    else:
        counts = [int(c) for c in respacing]
    return sorted(_sections(num_steps, counts))


def respace(process: GaussianDiffusion, respacing: str | Sequence[int] | None) -> GaussianDiffusion:
    """A process that keeps only the steps of ``process`` chosen by ``respacing``.

    Works on an already respaced process too: the new ``timestep_map`` refers to
    the same original process.
    """
    keep = space_timesteps(process.num_timesteps, respacing)
    alpha_bar = process.alphas_cumprod[keep]
    prev = np.append(1.0, alpha_bar[:-1])
    betas = 1.0 - alpha_bar / prev
    return GaussianDiffusion(betas, process.timestep_map[keep], process.original_num_steps)


def truncate(process: GaussianDiffusion, t_max: int) -> GaussianDiffusion:
    """The steps of ``process`` at original timesteps ≤ ``t_max``: its first indices, same betas,
    so ᾱ and every posterior are unchanged; a sampler over it starts at ``t_max``'s step
    (SDEdit-style sampling from a noised picture instead of pure noise)."""
    keep = int(np.searchsorted(process.timestep_map, t_max, side="right"))
    if keep == 0:
        raise ValueError(f"no step at t <= {t_max}: the process starts at t = {int(process.timestep_map[0])}")
    return GaussianDiffusion(process.betas[:keep], process.timestep_map[:keep], process.original_num_steps)


def make_process(
    schedule: str = "squaredcos_cap_v2", num_steps: int = 1000, respacing: str | Sequence[int] | None = None
) -> GaussianDiffusion:
    """The process GLIDE uses (cosine, 1000 steps) or another one, optionally respaced."""
    base = GaussianDiffusion(get_beta_schedule(schedule, num_steps))
    return base if respacing in (None, "") else respace(base, respacing)
