"""`piti weights`: the registry of known checkpoints and tools to check a file."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from piti_cli.cli.ui import console, progress_bar

app = typer.Typer(
    help="Known checkpoints: list, verify, fetch, hash and inspect weight files.",
    no_args_is_help=True,
)

WeightsDir = typer.Option(
    None, "--weights-dir", help="Folder holding weight files (default: $PITI_WEIGHTS_DIR, else ./weights)."
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="weights")


@app.command("list")
def list_weights(weights_dir: Optional[Path] = WeightsDir) -> None:
    """List every registered weight file and whether it is present."""
    from rich.table import Table

    from piti_cli.checkpoints.registry import load_manifest, locate, weights_dir as resolve_dir

    table = Table(title=f"weights (folder: {resolve_dir(weights_dir)})")
    for col in ("id", "kind", "source", "file", "present"):
        table.add_column(col)
    for entry in load_manifest().values():
        found = locate(entry, weights_dir)
        table.add_row(entry.id, entry.kind, entry.source, entry.filename, "[green]yes[/]" if found else "[dim]no[/]")
    console.print(table)


@app.command("verify")
def verify_weights(
    ids: Optional[List[str]] = typer.Argument(None, help="Weight ids to check (default: every present file)."),
    weights_dir: Optional[Path] = WeightsDir,
) -> None:
    """Check present files against their registered size and sha256. Exit 1 on a mismatch."""
    from piti_cli.checkpoints.registry import get_entry, load_manifest, locate, verify

    entries = [get_entry(i) for i in ids] if ids else [e for e in load_manifest().values() if locate(e, weights_dir)]
    bad = 0
    for entry in entries:
        with progress_bar(f"hashing {entry.id}") as update:
            result = verify(entry, weights_dir, update)
        style = {"ok": "green", "unverified": "yellow", "missing": "dim"}.get(result.status, "red")
        console.print(f"[{style}]{result.status:>13}[/]  {entry.id}  {result.path or entry.filename}")
        bad += result.status in ("mismatch", "size-mismatch") or (ids is not None and result.status == "missing")
    if not entries:
        console.print("no registered weight files present")
    if bad:
        raise typer.Exit(1)


@app.command("fetch")
def fetch_weights(
    ids: List[str] = typer.Argument(..., help="Weight ids to download."),
    weights_dir: Optional[Path] = WeightsDir,
) -> None:
    """Download registered files (resumable, checksum-verified)."""
    from piti_cli.checkpoints.registry import fetch, get_entry

    for entry_id in ids:
        entry = get_entry(entry_id)
        with progress_bar(f"fetching {entry.id}") as update:
            path = fetch(entry, weights_dir, update)
        console.print(f"{entry.id}: {path}")


@app.command("hash")
def hash_file(path: Path = typer.Argument(..., help="Any file.")) -> None:
    """Print the sha256 of a file (to compare with the manifest)."""
    from piti_cli.checkpoints.registry import sha256_file
    from piti_cli.errors import InputError

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with progress_bar(f"hashing {path.name}") as update:
        digest = sha256_file(path, update)
    console.print(f"{digest}  {path}")


@app.command("inspect")
def inspect_file(path: Path = typer.Argument(..., help="A .pt/.pth/.safetensors checkpoint.")) -> None:
    """Say which preset a checkpoint matches, its parameter count, and how it differs."""
    from piti_cli.checkpoints.inspect import inspect_checkpoint

    report = inspect_checkpoint(path)
    diff = report.diff
    verdict = "[green]exact match[/]" if diff.exact else f"[yellow]closest[/] ({diff.summary()})"
    console.print(f"file        {path}")
    console.print(f"preset      {diff.preset}  {verdict}")
    if report.stored_config:
        console.print(f"stored cfg  {report.stored_config}")
    console.print(f"tensors     {report.tensors}")
    console.print(f"parameters  {report.parameters:,}")
    console.print(f"dtypes      {', '.join(report.dtypes)}")
    console.print(f"kind        {report.description}")
    for label, names in (("missing", diff.missing), ("unexpected", diff.unexpected), ("mis-shaped", diff.mismatched)):
        if names:
            shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
            console.print(f"{label:<11} {len(names)}: {shown}", highlight=False)
