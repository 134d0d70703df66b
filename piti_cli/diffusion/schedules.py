"""Named beta schedules (float64) for an N-step Gaussian diffusion process.

- ``squaredcos_cap_v2``: the cosine schedule of improved DDPM,
  alpha_bar(s) = cos²((s + 0.008) / 1.008 · π/2) for s = t/N in [0, 1],
  beta_i = min(1 − alpha_bar((i+1)/N) / alpha_bar(i/N), 0.999).
- ``linear``: the DDPM schedule stretched to N steps, betas evenly spaced from
  0.0001·(1000/N) to 0.02·(1000/N).

GLIDE's base model and upsampler both use ``squaredcos_cap_v2`` with N = 1000.
"""

from __future__ import annotations

import math

import numpy as np

SCHEDULES = ("squaredcos_cap_v2", "linear")
MAX_BETA = 0.999


def cosine_alpha_bar(s: np.ndarray | float) -> np.ndarray:
    """Continuous alpha_bar of the cosine schedule at s in [0, 1]."""
    return np.cos((np.asarray(s, dtype=np.float64) + 0.008) / 1.008 * math.pi / 2) ** 2


def get_beta_schedule(name: str, num_steps: int) -> np.ndarray:
    """Betas of the named schedule over ``num_steps`` steps, as a float64 array."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    if name == "squaredcos_cap_v2":
        grid = np.arange(num_steps + 1, dtype=np.float64) / num_steps
        alpha_bar = cosine_alpha_bar(grid)
        return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], MAX_BETA)
    if name == "linear":
        scale = 1000.0 / num_steps
        return np.linspace(0.0001 * scale, 0.02 * scale, num_steps, dtype=np.float64)
    raise ValueError(f"unknown beta schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
