"""Seconds per 256-px image for the whole cascade on the full presets: official settings vs `--fast`.

Official settings: piti in fp32, ancestral 250 guided base steps (guidance 1.3, cond + uncond
batch) and the fast27 upsampler. `--fast`: `piti_cli.pipeline.cascade.FAST` (its samplers,
steps, guidance interval and precision auto). Random weights (cost does not depend on them).

A whole official image costs about a quarter of an hour on this 2-core CPU, so by default
each distinct network call is timed a few times, in turns with the other setting's (the
fastest of 3 base calls and of 2 upsampler calls), and multiplied by how often the settings
make it: the per-call batch rows come from
running the same sampler and guidance over a stand-in network that counts its calls.
The condition encoder is timed once per stage and counted once (piti encodes once per
batch). `--full` samples one whole image per setting instead.

    python -m benchmarks.end_to_end                 # estimate from timed calls (~5 min)
    python -m benchmarks.end_to_end --full          # everything (~20 min on the CPU)
    python -m benchmarks.end_to_end --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import collections
import time

import torch

from benchmarks.machine import random_model, setup, timed
from piti_cli.pipeline import cascade
from piti_cli.models.config import PRESETS
from piti_cli.pipeline.cascade import StageSettings, run_sampler, sample_cascade

TARGET = 15.0
OFFICIAL = {"base": cascade.BASE_DEFAULTS, "upsampler": cascade.UPSAMPLE_DEFAULTS, "precision": "fp32"}
REPS = {"base": 3, "upsampler": 2}  # rounds of timed calls per stage (the first also warms up)


def fast_settings() -> dict:
    fast = cascade.FAST
    return {"base": fast.base, "upsampler": fast.upsampler, "precision": fast.precision}


def call_rows(preset: str, settings: StageSettings) -> collections.Counter:
    """{batch rows: network calls} for one image at `settings`: the sampler and the guidance
    wrapper run as `cascade.make_denoiser` wires them, over a counting stand-in network."""
    from piti_cli.diffusion.guidance import classifier_free
    from piti_cli.diffusion.respace import make_process

    rows: collections.Counter = collections.Counter()

    def network(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        rows.update([x.shape[0]])
        return torch.zeros(x.shape[0], 6, *x.shape[2:])  # ε and the variance channels

    denoiser = network
    if settings.guidance != 1.0 or settings.normalized:
        denoiser = classifier_free(network, settings.guidance, settings.normalized, settings.guidance_interval, network)
    d = PRESETS[preset].diffusion
    run_sampler(denoiser, make_process(d.schedule, d.steps, settings.steps), (1, 3, 8, 8),
                torch.Generator().manual_seed(0), settings)
    return rows


def stage_calls(stage: str, settings: StageSettings, precision: str, device: torch.device, suffix: str):
    """One image's network calls of a stage: [(count, call)] and the condition encoder's call."""
    preset = ("piti-base-mask" if stage == "base" else "piti-upsample-mask") + suffix
    model = random_model(preset, device, precision)
    dtype = next(model.parameters()).dtype
    size = model.config.unet.image_size
    cond = (torch.rand(1, *model.condition_shape, device=device) * 2 - 1).to(dtype)
    counts = call_rows(preset, settings)
    calls = []
    for rows, n in sorted(counts.items()):  # as piti calls it (one row per call in CPU fp32)
        emb = cascade.encode(model, torch.cat([cond] * rows))
        x = torch.randn(rows, 3, size, size, device=device, dtype=dtype)
        t = torch.full((rows,), 500.0, device=device)
        low = torch.zeros(rows, 3, 64, 64, device=device, dtype=dtype) if model.config.is_upsampler else None
        calls.append((n, rows, lambda d=cascade.network_denoiser(model, emb, low), x=x, t=t: d(x, t)))
    return calls, lambda: cascade.encode(model, torch.cat([cond] * max(counts)))


def estimate(runs: dict, device: torch.device, suffix: str) -> dict:
    """Seconds per image per setting: every distinct call timed in turns with the other setting's
    (the fastest of REPS[stage] rounds: load on a shared machine drifts), times
    its count, plus the encoder once."""
    seconds = {label: 0.0 for label in runs}
    for stage in ("base", "upsampler"):
        calls = {label: stage_calls(stage, s[stage], s["precision"], device, suffix) for label, s in runs.items()}
        best: dict = {}
        for _ in range(REPS[stage]):
            for label, (stage_list, _) in calls.items():
                for n, rows, call in stage_list:
                    best[(label, rows)] = min(best.get((label, rows), float("inf")), timed(call, 1, warmup=0))
        for label, (stage_list, encoder) in calls.items():
            part = timed(encoder, 1, warmup=0) + sum(n * best[(label, rows)] for n, rows, _ in stage_list)
            seconds[label] += part
            how = ", ".join(f"{n} × batch {rows} at {best[(label, rows)]:.2f} s" for n, rows, _ in stage_list)
            print(f"  {label}, {stage}: {part:.1f} s  ({how}, encoder once)", flush=True)
        del calls
    return seconds


def full_image(settings: dict, device: torch.device, suffix: str = "") -> float:
    precision = settings["precision"]
    base = random_model("piti-base-mask" + suffix, device, precision)
    up = random_model("piti-upsample-mask" + suffix, device, precision)
    cond = torch.rand(1, *base.condition_shape, device=device) * 2 - 1
    start = time.perf_counter()
    sample_cascade(base, up, cond.to(next(base.parameters()).dtype), torch.Generator(device).manual_seed(0),
                   settings["base"], settings["upsampler"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def describe(settings: dict) -> str:
    def stage(s: StageSettings) -> str:
        interval = getattr(s, "guidance_interval", None)
        return f"{s.sampler} {s.steps}" + (f" (guidance interval {interval})" if interval else "")

    return f"base {stage(settings['base'])} + upsampler {stage(settings['upsampler'])}, {settings['precision']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="sample a whole image per setting instead of estimating")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="the tiny presets (a check that the script runs; not the benchmark)")
    args = ap.parse_args()
    print(setup(args.threads))
    suffix = "-tiny" if args.tiny else ""
    from piti_cli.runtime import resolve_device, resolve_precision

    device = resolve_device(args.device)
    runs = {label: dict(settings, precision=resolve_precision(settings["precision"], device))
            for label, settings in (("official settings", OFFICIAL), ("--fast", fast_settings()))}
    for label, settings in runs.items():
        print(f"{label}: {describe(settings)} on {device}")
    if args.full:
        seconds = {label: full_image(settings, device, suffix) for label, settings in runs.items()}
        for label, value in seconds.items():
            print(f"  {label}: one whole image, sampled: {value:.1f} s")
    else:
        seconds = estimate(runs, device, suffix)
        for label, value in seconds.items():
            print(f"  {label}: {value:.1f} s per image (estimate: timed calls × call counts)")
    ratio = seconds["official settings"] / seconds["--fast"]
    verdict = "meets" if ratio >= TARGET else "misses"
    print(f"\n--fast is {ratio:.1f}× faster per image than the official settings in fp32 ({verdict} the {TARGET:g}× target)")


if __name__ == "__main__":
    main()
