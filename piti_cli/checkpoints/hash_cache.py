"""A cache of file sha256 sums, so `piti sample` does not re-read two 1.5 GB checkpoints per run.

An entry is keyed by the file's absolute path and stamped with its size, mtime (ns) and inode:
a rewritten file (in place or renamed over, as `atomic_path` does) misses and is hashed again.
The cache is one small JSON file in the piti home, written atomically. Two processes writing
at once can only lose each other's new entry (it is recomputed next time), never corrupt the
file, so no lock is taken; an unreadable or corrupt cache counts as empty, an unwritable one
is skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from piti_cli.home import piti_home
from piti_cli.io_utils import atomic_write_text, read_tagged_json

CACHE_NAME = "sha256-cache.json"
FORMAT = "piti-sha256-cache"
MAX_ENTRIES = 512


def cache_file() -> Path:
    return piti_home() / CACHE_NAME


def stamp(path: Path) -> tuple[str, list[int]]:
    """(key, stamp) of a file as it is now."""
    st = os.stat(path)
    return str(Path(path).resolve()), [st.st_size, st.st_mtime_ns, st.st_ino]


def _entries() -> dict:
    return read_tagged_json(cache_file(), FORMAT, "entries")


def lookup(key: str, file_stamp: list[int]) -> str | None:
    hit = _entries().get(key)
    if isinstance(hit, dict) and hit.get("stamp") == file_stamp and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    return None


def store(key: str, file_stamp: list[int], digest: str) -> None:
    entries = _entries()
    entries.pop(key, None)  # re-inserted last: the oldest entries are dropped first
    entries[key] = {"stamp": file_stamp, "sha256": digest}
    kept = dict(list(entries.items())[-MAX_ENTRIES:])
    try:
        atomic_write_text(cache_file(), json.dumps({"format": FORMAT, "entries": kept}, indent=1) + "\n")
    except OSError:
        pass  # a read-only home only costs the next run a re-hash
