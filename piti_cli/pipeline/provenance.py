"""What made each picture: settings in every PNG's text chunk, and a record of every run.

Each PNG written by `piti sample` carries a JSON text chunk `piti` (as other generators write
their parameters into their PNGs) naming its condition, sample index, seed, checkpoints'
sha256, samplers, steps, guidance, precision and piti version. A rerun into the same folder
reads these back: a picture whose recorded settings match is kept, one that differs stops the
run (`--overwrite` redoes it). `piti_sample.json` keeps one entry per run into the folder and
an index that lists every picture once with the run that wrote it.
"""

from __future__ import annotations

import json
from pathlib import Path

from piti_cli.data.images import png_text
from piti_cli.errors import InputError
from piti_cli.io_utils import atomic_write_text
from piti_cli.pipeline.cascade import recorded_steps

TEXT_KEY = "piti"
RECORD_FORMAT = "piti-sample-record"
# The settings that decide a picture; the rest of its record (versions, device, batch size,
# timings) is kept for the reader but does not stop a rerun from keeping it.
MATCH_KEYS = ("condition", "condition_sha256", "sample_index", "seed", "base", "upsampler", "precision")


def png_chunks(record: dict) -> dict[str, str]:
    """The PNG text chunks for a picture's record."""
    return {TEXT_KEY: json.dumps(record, sort_keys=True), "Software": f"piti {record.get('piti_version', '')}".strip()}


def read_record(path: Path) -> dict | None:
    """The settings a piti PNG records, or None (no chunk, not a PNG, unreadable)."""
    text = png_text(path).get(TEXT_KEY)
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def first_difference(expected, found, prefix: str = "") -> str | None:
    """The dotted name of the first setting that differs between two records, or None."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in sorted(set(expected) | set(found)):
            diff = first_difference(expected.get(key), found.get(key), f"{prefix}{key}.")
            if diff:
                return diff
        return None
    return None if expected == found else prefix.rstrip(".")


def conflict(path: Path, expected: dict) -> str | None:
    """Why the existing picture at `path` cannot be kept for `expected`, or None if it can."""
    found = read_record(path)
    if found is None:
        return f"{path}: exists without piti's settings record"
    for stage in ("base", "upsampler"):  # an older record kept a plain step count as text
        if isinstance(found.get(stage), dict) and "steps" in found[stage]:
            found[stage]["steps"] = recorded_steps(found[stage]["steps"])
    key = first_difference({k: expected.get(k) for k in MATCH_KEYS}, {k: found.get(k) for k in MATCH_KEYS})
    return None if key is None else f"{path}: was made with other settings ({key} differs)"


def refuse_mixing(reason: str) -> InputError:
    return InputError(f"{reason}; rerun with --overwrite to redo it, or choose another --out")


def _read_sidecar(path: Path) -> dict:
    if not path.exists():
        return {"format": RECORD_FORMAT, "version": 2, "runs": [], "pictures": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable run record ({type(err).__name__}); move it away to start a new one") from None
    if isinstance(data, dict) and data.get("format") == RECORD_FORMAT and isinstance(data.get("runs"), list):
        data.setdefault("pictures", {})
        pictures = data["pictures"]
        if not (isinstance(pictures, dict) and all(isinstance(i, int) for i in pictures.values())
                and all(isinstance(r, dict) for r in data["runs"])):
            raise InputError(f"{path}: damaged run record (its runs or pictures are not what piti writes); "
                             "move it away to start a new one")
        return data
    if isinstance(data, dict) and "outputs" in data:  # one run, as piti 0.1 wrote it
        run = dict(data, written=list(data.get("outputs", [])), kept=[])
        return {"format": RECORD_FORMAT, "version": 2, "runs": [run], "pictures": {f: 0 for f in run["written"]}}
    raise InputError(f"{path}: not a piti run record; move it away to start a new one")


def check_record(path: Path) -> None:
    """`InputError` now, before any sampling, if the run record at `path` cannot be appended to."""
    _read_sidecar(path)


def append_run(path: Path, run: dict) -> dict:
    """Add `run` (with `written` and `kept` file lists) to the record at `path`, atomically."""
    data = _read_sidecar(path)
    data["runs"].append(run)
    index = len(data["runs"]) - 1
    for name in run.get("written", []):
        data["pictures"][name] = index
    data["pictures"] = dict(sorted(data["pictures"].items()))
    atomic_write_text(path, json.dumps(data, indent=2))
    return data
