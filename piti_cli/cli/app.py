"""`piti app`: the local web app (Gradio; the optional extra `piti[app]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from piti_cli.cli.options import Command, DEVICE_HELP, SamplePrecision, check_device, file_size, flag
from piti_cli.cli.ui import console


def register(root: typer.Typer) -> None:
    root.command("app", cls=Command)(app)


def app(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 serves your network: mind who can reach it)."),
    port: int = typer.Option(7860, "--port", min=0, max=65535, help="Port (0: any free one)."),
    out: Path = typer.Option(Path("app_outputs"), "--out", "-o", help="Folder the pictures are written to (one subfolder per job)."),
    base: Optional[str] = typer.Option(None, "--base", help="Base checkpoint loaded first: path or registry id (default: bundled demo)."),
    upsampler: Optional[str] = typer.Option(None, "--upsampler", help="Its upsampler (default with the demo base: the demo upsampler)."),
    device: str = typer.Option("auto", "--device", callback=check_device, help=DEVICE_HELP),
    precision: SamplePrecision = typer.Option("auto", "--precision", help="auto | fp32 (the faithful path) | bf16 | fp16 (CUDA)."),
    weights_dir: Optional[str] = typer.Option(None, "--weights-dir", metavar="DIR", help="Where registry ids are looked up."),
    steps: int = typer.Option(50, "--steps", min=1, help="The page's first number of base steps (the README command's)."),
    max_file_size: str = typer.Option("20mb", "--max-file-size", callback=file_size, help="Largest upload the server accepts: a whole number with b, kb, mb or gb."),
    open_browser: bool = flag(False, "--open", help="Open the page in a browser."),
) -> None:
    """Draw or upload a condition in the browser, see the pictures, edit in place.

    Prints the page's address; one job runs at a time (others wait in a queue). Needs the
    extra: pip install "piti[app]".
    """
    import importlib.util
    import os

    if importlib.util.find_spec("gradio") is None:
        from piti_cli.errors import InputError

        raise InputError('piti app needs Gradio: pip install "piti[app]" (from a checkout: pip install -e ".[app]")')

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # never calls home
    from piti_cli.app import build_app, launch

    blocks = build_app(out, base, upsampler, device, str(precision), weights_dir, steps=steps)
    url = launch(blocks, host, port, max_file_size, open_browser)
    console.print(f"piti app at {url} (Ctrl+C stops it)", highlight=False)
    blocks.block_thread()
