"""`piti edit`: change a condition, keep the rest of the image (DDIM with fixed noise)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from piti_cli.cli.options import Command, DEVICE_HELP, SamplePrecision, check_device, flag, number, respacing
from piti_cli.cli.ui import console, progress_bar


def register(root: typer.Typer) -> None:
    root.command("edit", cls=Command)(edit)


def edit(
    cond: str = typer.Option(..., "--cond", "-c", help="The original condition (mask, sketch or depth-normal file)."),
    edited: str = typer.Option(..., "--edited", "-e", help="The edited condition, same kind and size."),
    image: Optional[str] = typer.Option(None, "--image", help="A real photo to edit: DDIM-inverted under --cond first."),
    out: Path = typer.Option(Path("edits"), "--out", "-o", help="Folder for original/edited(/reconstruction).png."),
    base: Optional[str] = typer.Option(None, "--base", help="Base checkpoint: path or registry id (default: bundled demo)."),
    upsampler: Optional[str] = typer.Option(None, "--upsampler", help="Upsampler: path or registry id (default with the demo base: the demo upsampler)."),
    base_only: bool = flag(False, "--base-only", help="Stop at 64×64; no upsampler (a real base otherwise needs its --upsampler, as in `piti sample`)."),
    steps: str = typer.Option("ddim50", "--steps", callback=respacing, help="DDIM respacing, e.g. ddim50, 100, 250."),
    guidance: float = typer.Option(1.0, "--guidance", "-g", callback=number(0.0), help="Official scale s (1 = none). Inversion is most faithful at 1."),
    normalized: bool = flag(False, "--normalized/--no-normalized", help="Normalized guidance (paper eq. 8)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for x_T when no --image is given."),
    keep_rest: bool = flag(True, "--keep-rest/--no-keep-rest", help="Keep the picture outside the edited part of the condition exactly (blended DDIM, both stages). --no-keep-rest: the paper's two free DDIM runs from one x_T, where the rest changes a little too."),
    device: str = typer.Option("auto", "--device", callback=check_device, help=DEVICE_HELP),
    precision: SamplePrecision = typer.Option("auto", "--precision", help="auto (bf16 where native, else fp32) | fp32 (the faithful path) | bf16 | fp16 (CUDA)."),
    weights_dir: Optional[str] = typer.Option(None, "--weights-dir", metavar="DIR", help="Where registry ids are looked up."),
) -> None:
    """Edit an image by editing its condition (paper appendix).

    Both conditions are sampled with deterministic DDIM from the same x_T; by default the edited
    run takes the original's state outside the changed part of the condition after every step,
    so the rest of the picture stays exactly (--no-keep-rest: the paper's two free runs). With --image, x_T is the DDIM inversion of
    a real photo under --cond, and reconstruction.png shows how well it is regenerated.
    """
    from piti_cli.pipeline.cascade import StageSettings
    from piti_cli.pipeline.edit import run_edit

    settings = StageSettings(sampler="ddim", steps=steps, guidance=guidance, normalized=normalized)

    with progress_bar("editing") as update:
        written = run_edit(cond, edited, out, base, upsampler, image, settings, seed, device, precision, weights_dir, update,
                           base_only=base_only, keep_rest=keep_rest)
    console.print("wrote " + ", ".join(str(p) for p in written))
