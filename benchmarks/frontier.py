"""The speed/quality frontier of piti's samplers, measured on the bundled (trained) demo models.

For each sampler and step count: the RMSE (in [-1, 1] units) of the final pictures against a
1000-step DDIM reference from the same x_T and condition, the fraction of pixels whose colour
names the class under the mask (`colour_accuracy`, chance 0.25), network calls and network
batch rows per image, and seconds. The base model samples 64² at guidance 8 (the README
command's); the upsampler samples 256² from one fixed 64-px input, the real scene pictures
bicubic-downscaled to 64² in 8 bits, so its error is its own. Held-out masks: the demo recipe's evaluation scenes (seed
12345, never trained on). The references are computed in fp32 and cached under
`runs/frontier/` per weight file, so reruns take minutes; candidates run at `--precision`
(default auto: bf16 on CPUs with native bf16). Ancestral sampling is stochastic: its RMSE is
the distance to a different sample, not a discretisation error.

    python -m benchmarks.frontier                      # 8 base masks, 2 upsampler masks
    python -m benchmarks.frontier --up-count 8 --long  # more masks and step counts
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from benchmarks.machine import REPO, setup
from piti_cli.data.conditions import mask_condition
from piti_cli.data.scenes import MASK_COLOURS, colour_accuracy, make_scenes
from piti_cli import choices
from piti_cli.pipeline import cascade
from piti_cli.pipeline.cascade import StageSettings, prepare, quantize_8bit, sample_stage

HELD_OUT_SEED = 12345  # recipes/demo_model.py's evaluation scenes
GUIDANCE = 8.0  # the README command's
TOLERANCE = 0.01  # the rule for --fast: the fewest calls with final RMSE ≤ this on both stages
AGREEMENT_SLACK = 0.01  # ... and a mask agreement at most this below the reference's
BASE_ROWS = [("ddim", n) for n in (10, 25, 50)] + [("dpmpp-2m", n) for n in (10, 15, 20, 25, 50)]
UP_ROWS = [("ddim", n) for n in (10, 25)] + [("dpmpp-2m", n) for n in (5, 10, 15, 20, 27)]
LONG_BASE = [("ddim", 100), ("ddim", 250), ("dpmpp-2m", 100), ("dpmpp-2m", 125)]
LONG_UP = [("ddim", 50), ("ddim", 100), ("dpmpp-2m", 50), ("dpmpp-2m", 125)]


class CallCounter:
    """Counts network calls and the batch rows they evaluate (a forward pre-hook). Where the
    CPU calls the network one row at a time (`cascade.one_row_per_call`), the forwards of one
    denoiser call share its t: a call is a run of forwards at the same t."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = self.rows = 0
        self.last_t = None
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def __enter__(self) -> "CallCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()

    def _hook(self, module, args, kwargs) -> None:
        t = float((args[1] if len(args) > 1 else kwargs["t"]).flatten()[0])
        if t != self.last_t:
            self.calls += 1
        self.last_t = t
        self.rows += (args[0] if args else kwargs["x"]).shape[0]

    def reset(self) -> None:
        self.calls = self.rows = 0
        self.last_t = None


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).pow(2).mean().sqrt().item()


def load_stage(name: str, precision: str):
    from piti_cli.checkpoints.convert import load_model
    from piti_cli.checkpoints.registry import sha256_file

    path = REPO / "weights" / f"piti_demo_{name}.safetensors"
    model = prepare(load_model(path)[0], torch.device("cpu"), precision)
    return model, sha256_file(path)[:16]


def run(model, counter: CallCounter, settings: StageSettings, cond, noise, low=None, progress=None):
    """One stage from fixed x_T: (pictures, calls, rows per image, seconds)."""
    counter.reset()
    start = time.perf_counter()
    low = None if low is None else low.to(next(model.parameters()).dtype)
    out = sample_stage(model, cond, settings, torch.Generator().manual_seed(1), low, progress, noise)
    return out.float(), counter.calls, counter.rows / cond.shape[0], time.perf_counter() - start


def reference(name: str, stamp: str, model, settings: StageSettings, cond, noise, low=None) -> torch.Tensor:
    """The 1000-step fp32 DDIM picture, cached per weight file, masks, noise and settings."""
    from piti_cli.io_utils import atomic_torch_save

    key = f"{name}_{stamp}_{cond.shape[0]}_{settings.sampler}{settings.steps}_g{settings.guidance}"
    path = REPO / "runs" / "frontier" / f"reference_{key}.pt"
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    def report(done: int, total: int) -> None:
        if done % 100 == 0:
            print(f"    reference {name}: {done}/{total} steps", flush=True)

    with CallCounter(model) as counter:
        out, _, _, seconds = run(model, counter, settings, cond, noise, low, report)
    print(f"    reference {name}: {seconds:.0f} s, cached in {path.relative_to(REPO)}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(out, path)
    return out


def sweep(label, model, rows, settings, cond, noise, ref, masks, low=None, extra=()):
    """Print one table; returns ({(sampler, steps, interval): (calls, rows, rmse, agreement, seconds)},
    the reference's agreement)."""
    results = {}
    ref_agreement = colour_accuracy(ref, masks)
    print(f"\n{label}: reference agreement {ref_agreement:.3f}")
    print(f"  {'sampler':<10}{'steps':>7}{'interval':>11}{'calls':>7}{'rows/img':>9}{'RMSE':>10}"
          f"{'agree':>7}{'s/img':>8}")
    for sampler, steps, *rest in [*rows, *extra]:
        interval = rest[0] if rest else None
        changes = dict(sampler=sampler, steps=str(steps))
        if interval is not None:
            changes["guidance_interval"] = interval
        with CallCounter(model) as counter:
            out, calls, per_image, seconds = run(model, counter, dataclasses.replace(settings, **changes), cond, noise, low)
        res = (calls, per_image, rmse(out, ref), colour_accuracy(out, masks), seconds / cond.shape[0])
        results[(sampler, str(steps), interval)] = res
        shown = "-" if interval is None else f"{interval[0]:g},{interval[1]:g}"
        print(f"  {sampler:<10}{steps!s:>7}{shown:>11}{res[0]:>7}{res[1]:>9.0f}{res[2]:>10.2e}{res[3]:>7.3f}"
              f"{res[4]:>8.2f}", flush=True)
    return results, ref_agreement


def cheapest(results: dict, ref_agreement: float) -> tuple | None:
    """The deterministic setting with the fewest network batch rows whose RMSE ≤ TOLERANCE and
    whose mask agreement is at most AGREEMENT_SLACK below the reference's; None if none is."""
    ok = [(v[1], v[0], k) for k, v in results.items()
          if k[0] != "ancestral" and v[2] <= TOLERANCE and v[3] >= ref_agreement - AGREEMENT_SLACK]
    return min(ok)[2] if ok else None


def fast_key(stage: str) -> tuple:
    """`--fast`'s setting of a stage as a results key (sampler, steps, interval)."""
    s = cascade.FAST.base if stage == "base" else cascade.FAST.upsampler
    return (s.sampler, s.steps, s.guidance_interval)


def frontier_lines(results: dict) -> None:
    """Per sampler: calls → RMSE, in order of calls."""
    for sampler in sorted({k[0] for k in results}):
        points = sorted((v[0], v[2], k[2]) for k, v in results.items() if k[0] == sampler)
        text = ", ".join(f"{c}{'*' if i else ''} → {e:.1e}" for c, e, i in points)
        print(f"  {sampler:<10}{text}")


def stage_rows(stage: str, long: bool) -> list:
    new = [s for s in choices.SAMPLERS if s not in ("ancestral", "ddim", "dpmpp-2m")]
    if stage == "base":
        return BASE_ROWS + [(s, n) for s in new for n in (10, 15, 20)] + [("ancestral", 50)] + (LONG_BASE if long else [])
    return UP_ROWS + [(s, n) for s in new for n in (5, 10, 15)] + [("ancestral", "fast27")] + (LONG_UP if long else [])


def interval_rows(spec: str) -> list:
    """(sampler, steps, (lo, hi)) rows once StageSettings has a guidance interval."""
    if not spec or "guidance_interval" not in {f.name for f in dataclasses.fields(StageSettings)}:
        return []
    pairs = [tuple(float(v) for v in p.split(",")) for p in spec.split(";")]
    return [(s, n, p) for p in pairs for s, n in (("dpmpp-2m", 20), ("dpmpp-2m", 25))]


def measure_stage(stage: str, args, precision: str) -> dict:
    """The reference and the sweep of one stage; prints its table."""
    images, masks = make_scenes(args.count if stage == "base" else args.up_count, seed=HELD_OUT_SEED)
    cond = torch.from_numpy(np.stack([mask_condition(m, MASK_COLOURS) for m in masks]))
    size, low = 64, None
    settings = StageSettings(guidance=args.guidance)
    if stage == "upsampler":
        # A fixed, in-distribution 64-px input: the real pictures, bicubic to 64², in 8 bits as
        # the cascade hands them over (the demo recipe's upsampler measure does the same).
        pictures = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        low = quantize_8bit(torch.nn.functional.interpolate(pictures, size=(64, 64), mode="bicubic", antialias=True))
        size, settings = 256, cascade.UPSAMPLE_DEFAULTS
    noise = torch.randn(len(masks), 3, size, size, generator=torch.Generator().manual_seed(0))
    name = "base" if stage == "base" else "upsample"
    model, stamp = load_stage(name, "fp32")
    ref_settings = dataclasses.replace(settings, sampler=args.ref_sampler, steps=args.ref_steps)
    ref = reference(name, stamp, model, ref_settings, cond, noise, low)
    model = load_stage(name, precision)[0]
    rows = stage_rows(stage, args.long) + (interval_rows(args.intervals) if stage == "base" else [])
    rows += [(args.ref_sampler, args.check_steps)] if args.check_steps else []
    if args.rows:  # only these: "sampler:steps" or "sampler:steps:lo:hi", comma-separated
        rows = [(p[0], p[1], *([(float(p[2]), float(p[3]))] if len(p) == 4 else []))
                for p in (r.split(":") for r in args.rows.split(","))]
    label = (f"base 64², {len(masks)} masks, guidance {args.guidance:g}" if stage == "base"
             else f"upsampler 256², {len(masks)} masks, from the real pictures at 64² (8-bit)")
    return sweep(label, model, rows, settings, cond, noise, ref, masks, low)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=("base", "upsampler", "both"), default="both")
    ap.add_argument("--count", type=int, default=8, help="held-out masks for the base model")
    ap.add_argument("--up-count", type=int, default=2, help="held-out masks for the upsampler (256² is 16× the pixels)")
    ap.add_argument("--precision", default="auto", help="candidates' precision: auto | fp32 | bf16")
    ap.add_argument("--ref-sampler", default="ddim")
    ap.add_argument("--ref-steps", default="1000")
    ap.add_argument("--check-steps", default="", help="also run the reference sampler at these steps (its own error)")
    ap.add_argument("--long", action="store_true", help="also the longer step counts")
    ap.add_argument("--rows", default="", help="only these settings: sampler:steps[:lo:hi],... (lo, hi: guidance interval)")
    ap.add_argument("--intervals", default="0,800;200,800", help="guidance intervals (t) tried on the base, ';'-separated")
    ap.add_argument("--guidance", type=float, default=GUIDANCE, help="the base's guidance scale (default: the README command's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(setup(args.threads))
    from piti_cli.runtime import resolve_precision

    precision = resolve_precision(args.precision, torch.device("cpu"))
    print(f"candidates in {precision}; reference: fp32 {args.ref_sampler} {args.ref_steps} steps, same x_T; "
          f"samplers available: {', '.join(choices.SAMPLERS)}", flush=True)
    stages = ("base", "upsampler") if args.stage == "both" else (args.stage,)
    results = {stage: measure_stage(stage, args, precision) for stage in stages}

    print("\nfrontier: network calls → RMSE vs the reference (* = with a guidance interval)")
    for stage, (res, _) in results.items():
        print(f" {stage}:")
        frontier_lines(res)
    print(f"\n{precision}, deterministic samplers: the fewest network rows with RMSE ≤ {TOLERANCE} and agreement "
          f"at most {AGREEMENT_SLACK} below the reference's; then --fast's own setting")
    for stage, (res, ref_agreement) in results.items():
        pick = cheapest(res, ref_agreement)
        for label, key in (("rule", pick), ("--fast", fast_key(stage))):
            if key is None:
                print(f"  {stage} {label}: no measured setting meets it")
            elif key not in res:
                print(f"  {stage} {label}: {key[0]} {key[1]} was not measured in this run")
            else:
                calls, rows, err, agree, seconds = res[key]
                print(f"  {stage} {label}: {key[0]} {key[1]}{'' if key[2] is None else f' interval {key[2]}'}: "
                      f"{calls} calls, {rows:.0f} rows/image, RMSE {err:.2e}, agreement {agree:.3f} "
                      f"(reference {ref_agreement:.3f}), {seconds:.2f} s/image")

if __name__ == "__main__":
    main()
