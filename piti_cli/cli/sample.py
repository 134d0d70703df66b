"""`piti sample`: turn conditions into photos with the base model and the upsampler."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from piti_cli.cli.options import Command, DEVICE_HELP, Sampler, SamplePrecision, check_device, flag, given_options, number, respacing
from piti_cli.cli.ui import console, progress_bar

SAMPLER_HELP = ("ancestral (official, learned variance) | ddim | dpmpp-2m (DPM-Solver++, ~20 steps) | "
                "dpmpp-3m (third-order DPM-Solver++).")


def guidance_interval(value: Optional[str]) -> Optional[tuple[float, float]]:
    """--guidance-interval LO,HI: two finite numbers with 0 <= LO < HI <= 1000 (network t)."""
    if value is None:
        return None
    parts = value.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not LO,HI (two numbers, e.g. 100,700)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi <= 1000.0):
        raise typer.BadParameter(f"{value!r}: need finite 0 <= LO < HI <= 1000 (t on the 0..1000 scale)")
    return lo, hi


def register(root: typer.Typer) -> None:
    root.command("sample", cls=Command)(sample)


# What --fast sets; giving one of these with it is an error (no silent precedence).
FAST_OWNS = ("sampler", "steps", "upsample_sampler", "upsample_steps", "interval", "precision")


def sample(
    ctx: typer.Context,
    cond: Optional[str] = typer.Option(None, "--cond", "-c", help="A condition file, a folder of them, or a pack: data.h5 or data.h5:START-STOP. Default: the four bundled example masks."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the PNGs and piti_sample.json. Default: ./samples."),
    base: Optional[str] = typer.Option(None, "--base", help="Base 64×64 checkpoint: a path or a registry id (default: the bundled demo model)."),
    upsampler: Optional[str] = typer.Option(None, "--upsampler", help="64→256 upsampler checkpoint: path or registry id (default: the bundled demo)."),
    base_only: bool = flag(False, "--base-only", help="Stop at 64×64; no upsampler."),
    guidance: float = typer.Option(1.3, "--guidance", "-g", callback=number(0.0), help="Official scale s: ε_u + s(ε_c − ε_u). Paper's w = s − 1. 1 = no guidance."),
    normalized: bool = flag(False, "--normalized/--no-normalized", help="Normalized guidance (paper eq. 8): guided ε rescaled to the mean/std of ε_c."),
    sampler: Sampler = typer.Option("ancestral", "--sampler", help=SAMPLER_HELP),
    steps: str = typer.Option("250", "--steps", callback=respacing, help="Base respacing: 250, 100, ddim50 (50 steps at DDIM's even stride; the sampler is --sampler's), or sections like 10,10,3."),
    upsample_sampler: Sampler = typer.Option("ancestral", "--upsample-sampler", help=SAMPLER_HELP),
    upsample_steps: str = typer.Option("fast27", "--upsample-steps", callback=respacing, help="Upsampler respacing (official: fast27)."),
    upsample_start: Optional[int] = typer.Option(None, "--upsample-start", min=1, max=999, metavar="T", help="Start the upsampler at timestep T from the 64-px picture enlarged and noised to T (SDEdit-style), taking only its steps at t <= T: fewer calls, and colours kept where a small upsampler pales them (the README's first command: 300). Default: from pure noise, as the official sampler."),
    interval: Optional[str] = typer.Option(None, "--guidance-interval", metavar="LO,HI", callback=guidance_interval, help="Guide the base model only for t in [LO, HI] (0..1000; Kynkäänniemi et al. 2024); outside, the null half of the batch is not run."),
    eta: float = typer.Option(0.0, "--eta", callback=number(0.0), help="DDIM noise (0 = deterministic)."),
    num_samples: int = typer.Option(1, "--num-samples", "-n", min=1, help="Samples per condition."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Pictures per network batch (guided: twice as many network rows). Default: 4 on a CPU; on CUDA as many as fit in free memory, at most 64. Each picture has its own noise, so the batch size changes no picture's noise; on CUDA its last bits depend on the batch size: name one for byte-identical reruns."),
    seed: int = typer.Option(0, "--seed", min=0, help="Noise seed: with (condition, sample index) it fixes each picture's noise in any batch, process or rerun."),
    device: str = typer.Option("auto", "--device", callback=check_device, help=DEVICE_HELP),
    precision: SamplePrecision = typer.Option("auto", "--precision", help="auto: bf16 on CPUs with AVX512-BF16/AMX and CUDA GPUs with bf16, else fp32. fp32 is the faithful path (the official code's); bf16 is ~1.8× faster on such CPUs (full base model, measured); fp16 on CUDA only."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N conditions."),
    save_low_res: bool = flag(False, "--save-64", help="Also write the 64-px stage to OUT/64/."),
    grid: bool = flag(False, "--grid", help="Also write OUT/grid.png: one row per condition (the first 16), the condition then its samples."),
    strict: bool = flag(False, "--strict", help="Refuse the run when a file of a --cond folder is unusable (default: skip it, list it, exit 1 after the rest)."),
    overwrite: bool = flag(False, "--overwrite", help="Redo every picture; without it a rerun keeps the finished pictures whose settings match."),
    as_json: bool = flag(False, "--json", help="Print one JSON object (written and kept pictures, record file, seconds) instead of the summary line."),
    compile: bool = flag(False, "--compile", help="torch.compile each network's per-step call (on CUDA as captured CUDA graphs): faster over many pictures; the first batch compiles (tens of seconds on a GPU, minutes on a CPU) and pictures differ from the uncompiled ones in their last bits."),
    fast: bool = flag(False, "--fast", help="Few-step preset chosen on the measured speed/quality frontier (docs/performance.md): sets the samplers, steps and precision auto, with no guidance interval; keeps --guidance."),
    weights_dir: Optional[str] = typer.Option(None, "--weights-dir", metavar="DIR", help="Folder where registry ids are looked up first (then $PITI_WEIGHTS_DIR, the user cache ~/.cache/piti/weights, the bundled files)."),
) -> None:
    """Sample photos from semantic inputs (mask, sketch or depth+normals).

    The base model runs at 64×64 under classifier-free guidance, then the upsampler makes
    256×256 from the 8-bit 64-px result. Output PNGs are named after their inputs and carry
    their settings in a text chunk; piti_sample.json records every run into the folder. A
    rerun keeps finished pictures whose settings match; under `torchrun --nproc-per-node N
    -m piti_cli sample ...` the pictures are split over the processes.
    """
    from piti_cli.pipeline.cascade import FAST, sampling_settings
    from piti_cli.pipeline.sample import SampleJob

    cond, out = _defaults(cond, out)  # the samplers' names were checked by Typer (piti_cli.choices)
    if fast:
        from piti_cli.runtime import resolve_device, resolve_precision

        check_fast(ctx)
        precision = resolve_precision(FAST.precision, resolve_device(device))  # recorded as what it ran in
    base_settings, upsample_settings = sampling_settings(
        guidance=guidance, normalized=normalized, sampler=sampler, steps=steps, upsample_sampler=upsample_sampler,
        upsample_steps=upsample_steps, upsample_start=upsample_start, eta=eta, guidance_interval=interval, fast=fast)
    job = SampleJob(
        cond=cond, out=out, base=base, upsampler=upsampler, base_only=base_only,
        base_settings=base_settings, upsample_settings=upsample_settings,
        num_samples=num_samples, batch_size=batch_size, seed=seed, device=device, precision=precision,
        save_low_res=save_low_res, grid=grid, limit=limit, weights_dir=weights_dir, overwrite=overwrite,
        strict=strict, compile=compile,
    )
    report(run_job(job, out), out, as_json)


def run_job(job, out: Path):
    """Run `job` under the output lock (held by rank 0 under torchrun) with a progress bar on
    rank 0; a rank stopped by another rank's failure exits 1 quietly (rank 0 says why)."""
    import contextlib
    import os

    from piti_cli.io_utils import output_lock
    from piti_cli.pipeline.sample import run_sample
    from piti_cli.pipeline.shard import ShardStopped

    main = os.environ.get("RANK", "0") == "0"
    try:
        with output_lock(out) if main else contextlib.nullcontext(), \
                progress_bar("sampling") if main else contextlib.nullcontext(None) as update:
            return run_sample(job, update)
    except ShardStopped:
        raise typer.Exit(1) from None


def report(result, out: Path, as_json: bool) -> None:
    """The summary line (or JSON); the skipped inputs, one line each, then exit 1 (batch policy)."""
    if result.sidecar is None:  # not rank 0: rank 0 reports for all
        return
    from piti_cli.cli.ui import print_skipped

    print_skipped(result.skipped)
    _summary(result, out, as_json)
    if result.skipped:
        raise typer.Exit(1)


def _summary(result, out: Path, as_json: bool) -> None:
    if as_json:
        import json

        typer.echo(json.dumps({"written": [str(p) for p in result.images], "kept": [str(p) for p in result.kept],
                               "sidecar": str(result.sidecar), "seconds": round(result.seconds, 3),
                               "precision": result.precision, "world_size": result.world_size}))
        return
    n, kept = len(result.images), len(result.kept)
    note = f", kept {kept} finished from an earlier run" if kept else ""
    note += f", skipped {len(result.skipped)} unusable input{'' if len(result.skipped) == 1 else 's'}" if result.skipped else ""
    console.print(f"wrote {n} image{'' if n == 1 else 's'} to {out}/{note} in {result.seconds:.1f}s "
                  f"({result.precision}; settings: {result.sidecar})", highlight=False, markup=False, soft_wrap=True)


def check_fast(ctx: typer.Context) -> None:
    """--fast sets the samplers, steps, guidance interval and precision itself: refuse them given too."""
    given = [p.opts[0] for p in ctx.command.params if p.name in FAST_OWNS and p.name in given_options(ctx)]
    if given:  # two options that exclude each other: a usage error (exit 2)
        raise typer.BadParameter(f"it sets {', '.join(given)} itself; give either --fast or {', '.join(given)}",
                                 param_hint="'--fast'")


def _defaults(cond: Optional[str], out: Optional[Path]) -> tuple[str, Path]:
    """--cond and --out as given, else the bundled example masks and ./samples, said in one line."""
    said = []
    if cond is None:
        from importlib.resources import files

        cond = str(files("piti_examples"))
        said.append(f"no --cond: the bundled example masks ({cond})")
    if out is None:
        out = Path("samples")
        said.append(f"no --out: writing to {out}/")
    if said:
        console.print("; ".join(said), highlight=False, markup=False)
    return cond, out
