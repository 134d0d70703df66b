"""Shared helpers of the reliability corpus: run a command, check the one-line failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from piti_cli.cli.main import app
from tests.pipeline.conftest import random_checkpoint

FINISHED = {".png", ".h5", ".json", ".pt", ".safetensors", ".npz", ".jsonl"}


def invoke(*args: str, env: dict | None = None):
    """Run `piti ARGS` in this process through Typer's CliRunner."""
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def piti(*args: str, env=None, timeout: float = 300):
    """Run `python -m piti_cli ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "piti_cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def check_refused(result, names: str | list[str], code: int | tuple[int, ...] = (1, 2)) -> str:
    """The run failed with `code`, printed no traceback, and exactly one line of its error
    output names each of `names` (the file or the option). Returns that line."""
    out = result.stderr if isinstance(result, subprocess.CompletedProcess) else result.output
    exit_code = result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    codes = code if isinstance(code, tuple) else (code,)
    assert exit_code in codes, (exit_code, out)
    assert "Traceback" not in out, out
    names = [names] if isinstance(names, str) else names
    lines = [line for line in out.splitlines() if all(n in line for n in names)]
    assert len(lines) == 1, (names, out)
    if exit_code == 1:  # a piti error: one error line (progress lines may come before it)
        assert [line for line in out.splitlines() if line.startswith("error")] == lines, out
    return lines[0]


def nothing_finished(folder: Path) -> bool:
    """No file that looks like a finished output under `folder` (or no folder at all)."""
    if not folder.exists():
        return True
    return not [p for p in folder.rglob("*") if p.is_file() and p.suffix in FINISHED and not p.name.startswith(".")]


def save(picture: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)
    return path


def colour_mask(path: Path, size: int = 32) -> Path:
    from piti_cli.data.palettes import PALETTES

    labels = np.zeros((size, size), np.int64)
    labels[: size // 2] = 5
    return save(PALETTES["coco-stuff"]()[labels].astype(np.uint8), path)


@pytest.fixture(scope="session")
def mask_base(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("models") / "base.pt", "piti-base-mask-tiny", 0)
