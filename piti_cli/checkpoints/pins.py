"""Checksums pinned on first download, for registry entries whose publisher gives none.

The manifest carries a sha256 where one is published. For the others, the first complete
download records its sum here (`<piti home>/weights-pins.json`, written atomically under a
lock), and every later fetch, verify and `weights list` holds the file to it: a changed file
upstream or on disk is a mismatch, not silently new weights. `weights list` says who pinned
each entry: the manifest, a first download (with its date), or nobody.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from filelock import FileLock

from piti_cli.home import piti_home
from piti_cli.io_utils import atomic_write_text, read_tagged_json

PINS_NAME = "weights-pins.json"
FORMAT = "piti-weights-pins"


def pins_file() -> Path:
    return piti_home() / PINS_NAME


def load_pins() -> dict[str, dict]:
    """{entry id: {"sha256", "url", "pinned"}}; an unreadable or foreign file counts as empty."""
    pins = read_tagged_json(pins_file(), FORMAT, "pins")
    return {k: v for k, v in pins.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}


def pin(entry_id: str, sha256: str, url: str | None) -> None:
    """Record `sha256` for `entry_id` unless it is pinned already (the first download wins)."""
    path = pins_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        pins = load_pins()
        if entry_id in pins:
            return
        pins[entry_id] = {"sha256": sha256, "url": url, "pinned": f"first download, {time.strftime('%Y-%m-%d')}"}
        atomic_write_text(path, json.dumps({"format": FORMAT, "pins": pins}, indent=1, sort_keys=True) + "\n")


def expected(entry) -> tuple[str | None, str]:
    """(the sha256 a file of `entry` must have or None, who says so: "manifest", "pinned on
    first download, DATE" or "not pinned")."""
    if entry.sha256:
        return entry.sha256, "manifest"
    held = load_pins().get(entry.id)
    if held:
        return held["sha256"], f"pinned on {held.get('pinned', 'first download')}"
    return None, "not pinned"
