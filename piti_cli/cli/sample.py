"""`piti sample`: turn conditions into photos with the base model and the upsampler."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from piti_cli.cli.ui import console, progress_bar

SAMPLER_HELP = "ancestral (official, learned variance) | ddim | dpmpp-2m (DPM-Solver++, ~20 steps)."


def register(root: typer.Typer) -> None:
    root.command("sample")(sample)


def sample(
    cond: str = typer.Option(..., "--cond", "-c", help="A condition file, a folder of them, or a pack: data.h5 or data.h5:START-STOP."),
    out: Path = typer.Option(Path("samples"), "--out", "-o", help="Folder for the PNGs and piti_sample.json."),
    base: Optional[str] = typer.Option(None, "--base", help="Base 64×64 checkpoint: a path or a registry id (default: the bundled demo model)."),
    upsampler: Optional[str] = typer.Option(None, "--upsampler", help="64→256 upsampler checkpoint: path or registry id (default: the bundled demo)."),
    base_only: bool = typer.Option(False, "--base-only", help="Stop at 64×64; no upsampler."),
    guidance: float = typer.Option(1.3, "--guidance", "-g", help="Official scale s: ε_u + s(ε_c − ε_u). Paper's w = s − 1. 1 = no guidance."),
    normalized: bool = typer.Option(False, "--normalized/--no-normalized", help="Normalized guidance (paper eq. 8): guided ε rescaled to the mean/std of ε_c."),
    sampler: str = typer.Option("ancestral", "--sampler", help=SAMPLER_HELP),
    steps: str = typer.Option("250", "--steps", help="Base respacing: 250, 100, ddim50, or sections like 10,10,3."),
    upsample_sampler: str = typer.Option("ancestral", "--upsample-sampler", help=SAMPLER_HELP),
    upsample_steps: str = typer.Option("fast27", "--upsample-steps", help="Upsampler respacing (official: fast27)."),
    eta: float = typer.Option(0.0, "--eta", help="DDIM noise (0 = deterministic)."),
    num_samples: int = typer.Option(1, "--num-samples", "-n", help="Samples per condition."),
    batch_size: int = typer.Option(4, "--batch-size", "-b", help="Images per network batch."),
    seed: int = typer.Option(0, "--seed", help="Same seed and batch size → identical images."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | bf16 | fp16 (fp16 on CUDA only). bf16 is ~1.8× faster on CPUs with AVX512-BF16 (full base model, measured)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N conditions."),
    save_low_res: bool = typer.Option(False, "--save-64", help="Also write the 64-px stage to OUT/64/."),
    grid: bool = typer.Option(False, "--grid", help="Also write OUT/grid.png."),
    weights_dir: Optional[str] = typer.Option(None, "--weights-dir", help="Where registry ids are looked up (default $PITI_WEIGHTS_DIR, else ./weights)."),
) -> None:
    """Sample photos from semantic inputs (mask, sketch or depth+normals).

    The base model runs at 64×64 under classifier-free guidance, then the upsampler makes
    256×256 from the 8-bit 64-px result. Output PNGs are named after their inputs, with a
    JSON sidecar recording every setting and the checkpoints' sha256.
    """
    from piti_cli.pipeline.cascade import SAMPLERS, StageSettings
    from piti_cli.pipeline.sample import SampleJob, run_sample
    from piti_cli.errors import InputError

    for name in (sampler, upsample_sampler):
        if name not in SAMPLERS:
            raise InputError(f"--sampler {name}: choose one of {', '.join(SAMPLERS)}")
    job = SampleJob(
        cond=cond, out=out, base=base, upsampler=upsampler, base_only=base_only,
        base_settings=StageSettings(sampler, steps, guidance, normalized, eta),
        upsample_settings=StageSettings(upsample_sampler, upsample_steps, 1.0, False, eta, init_scale=0.997),
        num_samples=num_samples, batch_size=batch_size, seed=seed, device=device, precision=precision,
        save_low_res=save_low_res, grid=grid, limit=limit, weights_dir=weights_dir,
    )
    with progress_bar("sampling") as update:
        result = run_sample(job, update)
    console.print(f"wrote {len(result.images)} images to {out}/ in {result.seconds:.1f}s (settings: {result.sidecar})")
