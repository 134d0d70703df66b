"""The weight registry: known files, where they live, their checksums, and fetching them.

Lookup order for the weights folder: explicit `--weights-dir` > `$PITI_WEIGHTS_DIR` >
`./weights`. Files shipped with piti itself (`source: bundled`) live in the repository's
`weights/` folder next to the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from piti_cli.errors import InputError, OfflineError, PitiError

ENV_WEIGHTS_DIR = "PITI_WEIGHTS_DIR"
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
MANIFEST = REPO_WEIGHTS / "manifest.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightEntry:
    id: str
    filename: str
    kind: str  # checkpoint | clip | fid-inception | hed
    source: str  # download | manual | bundled
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    preset: str | None = None
    description: str = ""


def load_manifest(path: Path = MANIFEST) -> dict[str, WeightEntry]:
    try:
        data = json.loads(Path(path).read_text())
        return {e["id"]: WeightEntry(**e) for e in data["entries"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PitiError(f"{path}: unreadable weight manifest ({err})") from None


def get_entry(entry_id: str) -> WeightEntry:
    entries = load_manifest()
    if entry_id not in entries:
        raise InputError(f"unknown weight id {entry_id!r}; known: {', '.join(entries)}")
    return entries[entry_id]


def weights_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_WEIGHTS_DIR):
        return Path(os.environ[ENV_WEIGHTS_DIR])
    return Path("weights")


def locate(entry: WeightEntry, directory: str | Path | None = None) -> Path | None:
    """Where the file of `entry` is, or None. Bundled files always come from the repository."""
    candidates = [weights_dir(directory) / entry.filename]
    if entry.source == "bundled":
        candidates.insert(0, REPO_WEIGHTS / entry.filename)
    return next((p for p in candidates if p.is_file()), None)


def resolve(spec: str | Path, directory: str | Path | None = None) -> Path:
    """A path, or a registry id resolved to its file; a clear error says where it belongs."""
    path = Path(spec)
    if path.is_file():
        return path
    entries = load_manifest()
    if str(spec) in entries:
        entry = entries[str(spec)]
        found = locate(entry, directory)
        if found:
            return found
        how = "`piti weights fetch " + entry.id + "`" if entry.source == "download" else f"download it from {entry.url}"
        raise InputError(
            f"{entry.id}: {entry.filename} not found in {weights_dir(directory)}; {how} and place it there"
        )
    raise InputError(f"{spec}: no such file and not a known weight id")


def sha256_file(path: Path, progress: Callable[[int, int], None] | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


@dataclass(frozen=True)
class Verification:
    entry: WeightEntry
    path: Path | None
    status: str  # ok | missing | mismatch | unverified (no checksum known) | size-mismatch
    sha256: str | None = None


def verify(entry: WeightEntry, directory=None, progress=None) -> Verification:
    path = locate(entry, directory)
    if path is None:
        return Verification(entry, None, "missing")
    if entry.size is not None and path.stat().st_size != entry.size:
        return Verification(entry, path, "size-mismatch")
    digest = sha256_file(path, progress)
    if entry.sha256 is None:
        return Verification(entry, path, "unverified", digest)
    return Verification(entry, path, "ok" if digest == entry.sha256 else "mismatch", digest)


def fetch(
    entry: WeightEntry,
    directory=None,
    progress: Callable[[int, int], None] | None = None,
    opener: Callable = urllib.request.urlopen,
) -> Path:
    """Download `entry` into the weights folder: resumable (`.part` + HTTP Range),
    checksum-verified, renamed into place only when complete and correct."""
    if entry.source != "download" or not entry.url:
        raise InputError(f"{entry.id}: no direct download; get it from {entry.url} and save it as "
                         f"{weights_dir(directory) / entry.filename}")
    target = weights_dir(directory) / entry.filename
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(entry.url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = opener(request, timeout=30)
    except (urllib.error.URLError, OSError) as err:
        raise OfflineError(f"{entry.id}: cannot reach {entry.url} ({getattr(err, 'reason', err)}); "
                           f"download it elsewhere and place it at {target}") from None
    with response:
        if start and getattr(response, "status", 206) != 206:
            start = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else (entry.size or 0)
        with open(part, "ab" if start else "wb") as f:
            done = start
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    if entry.sha256:
        digest = sha256_file(part)
        if digest != entry.sha256:
            part.unlink()
            raise PitiError(f"{entry.id}: checksum mismatch after download (got {digest[:12]}…, "
                            f"expected {entry.sha256[:12]}…); the partial file was removed")
    os.replace(part, target)
    return target
