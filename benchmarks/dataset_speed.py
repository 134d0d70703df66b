"""Dataset-scale sampling: pictures per minute on one device, per precision and batch size.

For each precision and batch size B (pictures per batch; `auto` = `pipeline.batching`'s choice
from free memory), the full presets with random weights (cost does not depend on them) run
as `piti sample` runs them (`cascade.sample_stage`: encoder once per batch, guided cond + null
rows together, the sampler's own arithmetic included):
- the base stage at 25 ancestral steps, guidance 3, scaled ×10 to the official 250;
- the upsampler's official fast27 from the 64-px result;
- the `--fast` preset's two stages whole (`cascade.FAST`).
It prints seconds per batch, pictures per minute at the official settings and at `--fast`,
the minutes an ADE20K-val-sized run (2,000 pictures) takes, peak memory, and the TFLOP/s the
official schedule achieves (FLOPs counted by `cascade.step_flops`) against `--peak`.

`--official PATH` also times the official implementation (a PITI-Synthesis/PITI checkout,
imported from PATH; nothing is copied) on the same device with the same random weights,
(piti's state dicts are in its layout), its `glide_util.sample` at the same
respacings, and prints piti's speed-up over it. Targets (issue 32, one H100): ≥ 10× the
official pictures per minute, 2,000 pictures in ≤ 30 min (≤ 5 with `--fast`).

    python -m benchmarks.dataset_speed                          # CUDA, fp32/bf16/fp16, B = 1, 8, 32, auto
    python -m benchmarks.dataset_speed --compile --batches auto
    python -m benchmarks.dataset_speed --official ~/PITI --batches 1,8
    python -m benchmarks.dataset_speed --tiny --device cpu --precisions fp32 --batches 1,2   # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import torch

from benchmarks.machine import random_model, setup
from piti_cli.pipeline.batching import auto_rows
from piti_cli.pipeline.cascade import FAST, UPSAMPLE_DEFAULTS, StageSettings, sample_stage, step_flops

PICTURES = 2000  # ADE20K val
BASE = StageSettings(steps="25", guidance=3.0)  # timed, then ×10 for the official 250 steps
SCALE = 10
# Dense tensor-core peaks (TFLOP/s) of common cards, for the achieved fraction (`--peak` overrides).
PEAKS = {"H100": {"fp32": 67, "bf16": 989, "fp16": 989}, "H200": {"fp32": 67, "bf16": 989, "fp16": 989},
         "A100": {"fp32": 19.5, "bf16": 312, "fp16": 312}}


def clock(device: torch.device, fn) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def ours(base, up, b: int, device: torch.device, picture_flops: float) -> dict:
    """Seconds per batch of `b` pictures: official base (×10), fast27, and `--fast`'s stages."""
    g = torch.Generator(device).manual_seed(0)
    cond = torch.rand(b, 3, 256, 256, device=device, generator=g)
    fast_base = dataclasses.replace(FAST.base, guidance=BASE.guidance)
    low = sample_stage(base, cond, dataclasses.replace(BASE, steps="2"), g)  # warm-up (and compiles)
    sample_stage(up, cond, dataclasses.replace(UPSAMPLE_DEFAULTS, steps="2"), g, low_res=low)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    row = {"base": SCALE * clock(device, lambda: sample_stage(base, cond, BASE, g)),
           "up": clock(device, lambda: sample_stage(up, cond, UPSAMPLE_DEFAULTS, g, low_res=low)),
           "fast": clock(device, lambda: sample_stage(base, cond, fast_base, g))
           + clock(device, lambda: sample_stage(up, cond, FAST.upsampler, g, low_res=low))}
    row["peak_gb"] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    row["tflops"] = b * picture_flops / (row["base"] + row["up"]) / 1e12
    return row


def official(path: str, base, up, b: int, device: torch.device) -> float:
    """Seconds per batch of `b` pictures with the official code at 25 (×10) + fast27 steps."""
    import importlib

    sys.path.insert(0, path)
    # the checkout's own package: pretrained_diffusion/ in the current repository, glide_text2im/ before
    package = next(p for p in ("pretrained_diffusion", "glide_text2im") if importlib.util.find_spec(p))
    glide_util = importlib.import_module(f"{package}.glide_util")
    script_util = importlib.import_module(f"{package}.script_util")
    create_model_and_diffusion, model_and_diffusion_defaults = (script_util.create_model_and_diffusion,
                                                                script_util.model_and_diffusion_defaults)

    models = []
    for mine, upsample in ((base, False), (up, True)):
        options = dict(model_and_diffusion_defaults(True if upsample else 0.0), mode="coco")
        model, _ = create_model_and_diffusion(**options)
        # piti's state dicts are in the official layout: the same keys and shapes, loaded strictly
        model.load_state_dict({k: v.float() for k, v in mine.state_dict().items()}, strict=True)
        models.append((model.to(device).eval(), options))
    cond = torch.rand(b, 3, 256, 256, device=device)
    low = torch.rand(b, 3, 64, 64, device=device) * 2 - 1

    def run(i: int, respacing: str) -> None:
        model, options = models[i]
        size = 256 if i else 64
        prompt = {"ref": cond, "low_res": low} if i else {"ref": cond}
        with torch.no_grad():
            glide_util.sample(model, options, size, size, prompt, batch_size=b, guidance_scale=1 if i else BASE.guidance,
                              device=device, prediction_respacing=respacing, upsample_enabled=bool(i))

    run(0, "2")
    run(1, "2")
    return SCALE * clock(device, lambda: run(0, "25")) + clock(device, lambda: run(1, "fast27"))


def fraction(achieved: float, peak: float) -> str:
    return "-" if peak != peak else f"{achieved / peak:.1%}"  # no peak known (NaN): a CPU, an unlisted card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precisions", default="fp32,bf16,fp16")
    ap.add_argument("--batches", default="1,8,32,auto", help="pictures per batch; auto = chosen from free memory")
    ap.add_argument("--compile", action="store_true", help="torch.compile the networks (piti sample --compile)")
    ap.add_argument("--official", metavar="PATH", help="a PITI-Synthesis/PITI checkout to time as the baseline")
    ap.add_argument("--tiny", action="store_true", help="the tiny presets (a smoke run of this script)")
    ap.add_argument("--peak", type=float, help="the device's peak TFLOP/s for the precision (default: a table)")
    args = ap.parse_args()
    print(setup())
    device = torch.device(args.device)
    suffix = "-tiny" if args.tiny else ""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print("seconds per batch of B pictures (base: 250 steps from 25 timed), pictures per minute, minutes for "
          f"{PICTURES} pictures; official = the official code's pictures per minute")
    print(f"{'prec':5} {'B':>4} {'base s':>8} {'up s':>7} {'pic/min':>8} {'min':>8} {'fast/min':>8} "
          f"{'min':>7} {'peak GB':>8} {'TFLOP/s':>8} {'of peak':>8} {'official':>9} {'speed-up':>8}")
    for precision in args.precisions.split(","):
        base = random_model(f"piti-base-mask{suffix}", device, precision)
        up = random_model(f"piti-upsample-mask{suffix}", device, precision)
        # FLOPs of one picture at the official schedule, counted eagerly (they grow linearly with B)
        picture_flops = 250 * step_flops(base.config, BASE, 64) + 27 * step_flops(up.config, UPSAMPLE_DEFAULTS, 64)
        if args.compile:  # as `piti sample --compile` prepares them
            base = random_model(f"piti-base-mask{suffix}", device, precision, compile=True)
            up = random_model(f"piti-upsample-mask{suffix}", device, precision, compile=True)
        peak = args.peak or next((p[precision] for card, p in PEAKS.items() if card in name), float("nan"))
        for spec in args.batches.split(","):
            b = auto_rows(base, up, BASE, UPSAMPLE_DEFAULTS, device, 256) if spec == "auto" else int(spec)
            row = ours(base, up, b, device, picture_flops)
            per_pic, fast = (row["base"] + row["up"]) / b, row["fast"] / b
            base_line = f"{'-':>9} {'-':>8}"
            if args.official and precision == "fp32" and not args.tiny:
                theirs = official(args.official, base, up, b, device) / b
                base_line = f"{60 / theirs:9.2f} {theirs / per_pic:7.1f}x"
            print(f"{precision:5} {b:4d} {row['base']:8.2f} {row['up']:7.2f} {60 / per_pic:8.2f} "
                  f"{PICTURES * per_pic / 60:8.1f} {60 / fast:8.2f} {PICTURES * fast / 60:7.1f} "
                  f"{row['peak_gb']:8.2f} {row['tflops']:8.2f} {fraction(row['tflops'], peak):>8} {base_line}", flush=True)
        del base, up
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
