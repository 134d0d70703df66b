"""A run's `metrics.jsonl` (one strict-JSON line per logged step) and the finiteness check of a step.

Lines are appended with one `write` on a file opened for appending, so a crash leaves at most
a torn last line; readers skip a line that is not complete JSON instead of failing the run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from piti_cli.errors import PitiError
from piti_cli.io_utils import atomic_write_text


def append_metrics(path: Path, values: dict) -> None:
    """Append `values` as one strict JSON line (NaN or ±inf raise ValueError: never logged)."""
    line = (json.dumps(values, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_metrics(path: Path) -> list[dict]:
    """The complete lines of a metrics file (a torn or foreign line is skipped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def truncate_metrics(path: Path, step: int) -> None:
    """On resume, keep only the complete lines logged up to the checkpoint we continue from."""
    if path.exists():
        keep = [row for row in read_metrics(path) if isinstance(row.get("step", 0), int) and row.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in keep))


def check_finite_step(step: int, means: dict, precision: str) -> None:
    """PitiError naming `step` when a loss term (or, outside fp16, whose loss scaler skips
    overflowing steps by design, the gradient norm) is not finite."""
    for name, value in means.items():
        if name == "grad_norm" and precision == "fp16":
            continue
        if not math.isfinite(value):
            raise PitiError(f"step {step}: {name} is {value}; training stopped, nothing saved from this step "
                            f"(lower --lr, or check the data)")
