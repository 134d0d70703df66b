"""`piti weights`: the registry of known checkpoints and tools to check a file."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from piti_cli.cli.options import Command, CommandGroup, flag
from piti_cli.cli.ui import console, progress_bar

app = typer.Typer(
    cls=CommandGroup,
    help="Known checkpoints: list, verify, fetch, hash and inspect weight files.",
    no_args_is_help=True,
)

WeightsDir = typer.Option(
    None, "--weights-dir", metavar="DIR",
    help="Folder looked in first and downloaded into (default: $PITI_WEIGHTS_DIR, else the user cache "
         "~/.cache/piti/weights or $PITI_HOME/weights; bundled files are always found).",
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="weights")


@app.command("list", cls=Command)
def list_weights(
    weights_dir: Optional[Path] = WeightsDir,
    as_json: bool = flag(False, "--json", help="Print JSON (folders searched, every entry, where it is)."),
) -> None:
    """List every registered weight file and where it was found."""
    from piti_cli.checkpoints.registry import load_manifest, locate, search_dirs

    rows = [(entry, locate(entry, weights_dir)) for entry in load_manifest().values()]
    if as_json:
        import dataclasses
        import json

        from piti_cli.checkpoints.pins import expected

        entries = [{**dataclasses.asdict(e), "present": p is not None, "path": str(p) if p else None,
                    "sha256_expected": expected(e)[0], "sha256_held_by": expected(e)[1]} for e, p in rows]
        typer.echo(json.dumps({"search_dirs": [str(d) for d in search_dirs(weights_dir)], "entries": entries}, indent=2))
        return
    from rich.table import Table

    from piti_cli.checkpoints.pins import expected

    table = Table(title="weights, looked up in: " + ", ".join(str(d) for d in search_dirs(weights_dir)))
    for col in ("id", "kind", "source", "file", "sha256 held by", "found in"):
        # ids are copied from here: never broken across lines
        table.add_column(col, overflow="fold", no_wrap=col == "id")
    for entry, found in rows:
        table.add_row(entry.id, entry.kind, entry.source, entry.filename, expected(entry)[1],
                      str(found.parent) if found else "[dim]-[/]")
    console.print(table)


@app.command("verify", cls=Command)
def verify_weights(
    ids: Optional[List[str]] = typer.Argument(None, metavar="ID", help="Weight ids to check (default: every present file)."),
    weights_dir: Optional[Path] = WeightsDir,
) -> None:
    """Check present files against their registered size and sha256. Exit 1 on a mismatch."""
    from piti_cli.checkpoints.registry import get_entry, load_manifest, locate, verify

    entries = [get_entry(i) for i in ids] if ids else [e for e in load_manifest().values() if locate(e, weights_dir)]
    bad = 0
    for entry in entries:
        with progress_bar(f"hashing {entry.id}", unit="B") as update:
            result = verify(entry, weights_dir, update)
        status, problem = result.status, None
        if status == "unverified" and entry.kind == "checkpoint" and entry.preset:
            from piti_cli.checkpoints.inspect import layout_problem

            # no checksum to compare: it must at least load and have the preset's layout
            problem = layout_problem(result.path, entry.preset)
            status = "broken" if problem else "layout-ok"
        style = {"ok": "green", "unverified": "yellow", "layout-ok": "yellow", "missing": "dim"}.get(status, "red")
        from rich.markup import escape

        console.print(f"[{style}]{status:>13}[/]  {escape(entry.id)}  {escape(str(result.path or entry.filename))}")
        if problem:
            from piti_cli.cli.ui import print_error

            print_error(problem)
        bad += status in ("mismatch", "size-mismatch", "broken") or (ids is not None and status == "missing")
    if not entries:
        console.print("no registered weight files present")
    if bad:
        raise typer.Exit(1)


@app.command("fetch", cls=Command)
def fetch_weights(
    ids: List[str] = typer.Argument(..., metavar="ID", help="Weight ids to download."),
    weights_dir: Optional[Path] = WeightsDir,
) -> None:
    """Download registered files (resumable, checksum-verified)."""
    from piti_cli.checkpoints.registry import fetch, get_entry

    for entry_id in ids:
        entry = get_entry(entry_id)
        with progress_bar(f"fetching {entry.id}", unit="B") as update:
            path = fetch(entry, weights_dir, update)
        console.print(f"{entry.id}: {path}")


@app.command("hash", cls=Command)
def hash_file(paths: List[Path] = typer.Argument(..., metavar="FILE", help="Files to hash.")) -> None:
    """Print the sha256 of files in `sha256sum`'s format (`sha256sum -c` reads it back)."""
    from piti_cli.checkpoints.registry import sha256_file
    from piti_cli.errors import InputError

    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    for path in paths:
        with progress_bar(f"hashing {path.name}", unit="B") as update:
            digest = sha256_file(path, update, cached=False)
        typer.echo(sha256sum_line(digest, str(path)))


def sha256sum_line(digest: str, name: str) -> str:
    """GNU sha256sum's line: `<hex>  <name>`; a name holding a backslash or a line break is
    escaped and the line starts with a backslash, as sha256sum does."""
    if not any(c in name for c in "\\\n\r"):
        return f"{digest}  {name}"
    escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return f"\\{digest}  {escaped}"


@app.command("inspect", cls=Command)
def inspect_file(spec: str = typer.Argument(..., metavar="FILE|ID", help="A .pt/.pth/.safetensors checkpoint, or a registry id.")) -> None:
    """Say which preset a checkpoint matches, its parameter count, and how it differs."""
    from piti_cli.checkpoints.inspect import inspect_checkpoint
    from piti_cli.checkpoints.registry import resolve
    from piti_cli.cli.ui import print_error

    path = resolve(spec)
    report = inspect_checkpoint(path)
    diff = report.diff
    exact = "[green]exact match[/]" + (" of its stored config" if report.departures else "")
    verdict = exact if diff.exact else f"[yellow]closest[/] ({diff.summary()})"
    if not report.usable:
        verdict = f"[red]unusable[/]: {len(report.non_finite)} tensor(s) hold NaN/Inf (layout: {'exact' if diff.exact else 'closest'})"
    console.print(f"file        {path}", markup=False, highlight=False)
    console.print(f"preset      {diff.preset}  {verdict}")
    if report.stored_config:
        console.print(f"stored cfg  {report.stored_config}")
    if report.departures:
        console.print(f"departures  {', '.join(report.departures)}", highlight=False, markup=False)
    console.print(f"tensors     {report.tensors}")
    console.print(f"parameters  {report.parameters:,}")
    console.print(f"dtypes      {', '.join(report.dtypes)}")
    console.print(f"kind        {report.description}")
    for label, names in (("missing", diff.missing), ("unexpected", diff.unexpected),
                         ("mis-shaped", diff.mismatched), ("NaN/Inf", report.non_finite)):
        if names:
            shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
            console.print(f"{label:<11} {len(names)}: {shown}", highlight=False, markup=False)
    if not report.usable:
        print_error(f"{path}: {len(report.non_finite)} tensors hold NaN/Inf; no piti command will load it")
        raise typer.Exit(1)
