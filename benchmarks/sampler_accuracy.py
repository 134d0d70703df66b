"""Sampler accuracy: RMSE of few-step samplers against a 1000-step DDIM reference.

Denoisers:
- ``gaussian``: the exact ε-prediction for data ~ N(0.1, 0.5²) per pixel
  (``piti_cli.diffusion.analytic``); its probability-flow ODE has a closed-form
  solution, shown as the ``exact`` row.
- ``gauss+net``: the same plus 0.2 × a tiny fixed random conv net (defined here),
  a stand-in for a learned, non-linear denoiser.

All samplers start from the same x_T (cosine schedule, 1000 steps, x_T at t = 999),
respaced evenly ("N"), x_0 clipped to [-1, 1] as in the official sampler.

    python benchmarks/sampler_accuracy.py
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from piti_cli.diffusion.analytic import GaussianDataDenoiser, flow_to_data
from piti_cli.diffusion.respace import make_process, respace
from piti_cli.diffusion.samplers import sample_ddim, sample_dpmpp_2m

MU, SD = 0.1, 0.5
SHAPE = (8, 3, 32, 32)


class TinyNet(nn.Module):
    """Two 3×3 convs with a sinusoidal time embedding; fixed random weights."""

    def __init__(self, channels: int = 3, hidden: int = 16) -> None:
        super().__init__()
        self.inp = nn.Conv2d(channels, hidden, 3, padding=1)
        self.time = nn.Linear(8, hidden)
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(-math.log(1000.0) * torch.arange(4, dtype=torch.float32) / 4)
        args = t.float()[:, None] * freqs[None]
        emb = self.time(torch.cat([args.sin(), args.cos()], dim=1))[:, :, None, None]
        return torch.tanh(self.out(torch.nn.functional.silu(self.inp(x) + emb)))


def main() -> None:
    base = make_process()
    torch.manual_seed(0)
    net = TinyNet().eval()
    gauss = GaussianDataDenoiser(base, MU, SD)

    def gauss_net(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return gauss(x, t) + 0.2 * net(x, t)

    x_t = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    exact = flow_to_data(x_t, float(base.alphas_cumprod[-1]), MU, SD).clamp(-1, 1)
    rows = [("dpm++2m", sample_dpmpp_2m, n) for n in (10, 15, 20, 25)]
    rows += [("ddim", sample_ddim, n) for n in (25, 50, 100, 250)]
    print(f"{'sampler':<10}{'steps':>6}{'gaussian':>12}{'gauss+net':>12}{'seconds':>9}")
    refs = {}
    start = time.perf_counter()
    for name, den in (("gaussian", gauss), ("gauss+net", gauss_net)):
        refs[name] = sample_ddim(den, base, x_t, None)
    print(f"{'ddim ref':<10}{1000:>6}{'(ref)':>12}{'(ref)':>12}{time.perf_counter() - start:>9.2f}")
    err = (refs["gaussian"].double() - exact.double()).pow(2).mean().sqrt().item()
    print(f"{'exact ODE':<10}{'-':>6}{err:>12.2e}{'-':>12}{'-':>9}   (ddim-1000 ref vs closed form)")
    for label, sampler, steps in rows:
        process = respace(base, str(steps))
        start = time.perf_counter()
        errs = []
        for name, den in (("gaussian", gauss), ("gauss+net", gauss_net)):
            out = sampler(den, process, x_t, None)
            errs.append((out.double() - refs[name].double()).pow(2).mean().sqrt().item())
        print(f"{label:<10}{steps:>6}{errs[0]:>12.2e}{errs[1]:>12.2e}{time.perf_counter() - start:>9.2f}")


if __name__ == "__main__":
    with torch.no_grad():
        main()
