"""The weight registry: known files, where they live, their checksums, and fetching them.

Checkpoints are looked up, in order, in an explicit `--weights-dir`, `$PITI_WEIGHTS_DIR`, the
user cache (`<piti home>/weights`, see `piti_cli.home`) and the files bundled with piti
itself. The manifest and the bundled demo files are package data (`weights/` in the
repository, installed as the package `piti_weights`), found through `importlib.resources`,
so they are found wherever piti is installed. Downloads go to the first of the three folders
that applies, never to the current folder.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from piti_cli.checkpoints import hash_cache, pins
from piti_cli.errors import InputError, OfflineError, PitiError
from piti_cli.home import piti_home

ENV_WEIGHTS_DIR = "PITI_WEIGHTS_DIR"
BUNDLED_PACKAGE = "piti_weights"
_CHUNK = 1 << 20


def _bundled_dir() -> Path:
    try:
        root = resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError:  # an editable install made before 0.2.0: the source tree
        return Path(__file__).resolve().parents[2] / "weights"
    return Path(str(root))


BUNDLED_DIR = _bundled_dir()
MANIFEST = BUNDLED_DIR / "manifest.json"


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
    """The folder downloads go to: explicit > `$PITI_WEIGHTS_DIR` > `<piti home>/weights`."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_WEIGHTS_DIR):
        return Path(os.environ[ENV_WEIGHTS_DIR])
    return piti_home() / "weights"


def search_dirs(explicit: str | Path | None = None) -> list[Path]:
    """Every folder a file is looked up in, first match wins: explicit > `$PITI_WEIGHTS_DIR` >
    user cache > bundled."""
    dirs = [Path(explicit)] if explicit else []
    if os.environ.get(ENV_WEIGHTS_DIR):
        dirs.append(Path(os.environ[ENV_WEIGHTS_DIR]))
    dirs += [piti_home() / "weights", BUNDLED_DIR]
    return list(dict.fromkeys(dirs))


def locate(entry: WeightEntry, directory: str | Path | None = None) -> Path | None:
    """Where the file of `entry` is (the first folder of `search_dirs` holding it), or None."""
    return next((p for p in (d / entry.filename for d in search_dirs(directory)) if p.is_file()), None)


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
        looked = ", ".join(str(d) for d in search_dirs(directory)[:-1])
        how = (f"run `piti weights fetch {entry.id}`" if entry.source == "download"
               else f"download it from {entry.url} and save it as {weights_dir(directory) / entry.filename}")
        raise InputError(f"{entry.id}: {entry.filename} not found (looked in {looked}); {how}")
    raise InputError(f"{spec}: no such file and not a known weight id")


def sha256_file(path: Path, progress: Callable[[int, int], None] | None = None, *, cached: bool = True) -> str:
    """The sha256 of a file. With `cached`, a hash computed before for the same path, size,
    mtime and inode is reused (`hash_cache`); `cached=False` reads the file (and refreshes
    the cache)."""
    key, before = hash_cache.stamp(path)
    if cached and (hit := hash_cache.lookup(key, before)):
        if progress:
            progress(before[0], before[0])
        return hit
    digest = _read_sha256(path, progress)
    if hash_cache.stamp(path)[1] == before:  # not changed while it was read
        hash_cache.store(key, before, digest)
    return digest


def _read_sha256(path: Path, progress: Callable[[int, int], None] | None = None) -> str:
    digest = hashlib.sha256()
    total = os.stat(path).st_size
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
    digest = sha256_file(path, progress, cached=False)  # verifying means reading the bytes
    want, _ = pins.expected(entry)
    if want is None:
        return Verification(entry, path, "unverified", digest)
    return Verification(entry, path, "ok" if digest == want else "mismatch", digest)


def fetch(
    entry: WeightEntry,
    directory=None,
    progress: Callable[[int, int], None] | None = None,
    opener: Callable = urllib.request.urlopen,
) -> Path:
    """Download `entry` into the weights folder: resumable (`.part` + HTTP Range),
    checksum-verified, renamed into place only when complete and correct. A bundled entry is
    already here: its path, nothing fetched."""
    if entry.source == "bundled":
        found = locate(entry, directory)
        if found is None:
            raise PitiError(f"{entry.id}: bundled with piti but missing from {BUNDLED_DIR}; reinstall piti")
        return found
    if entry.source != "download" or not entry.url:
        raise InputError(f"{entry.id}: no direct download; get it from {entry.url} and save it as "
                         f"{weights_dir(directory) / entry.filename}")
    target = weights_dir(directory) / entry.filename
    if target.is_file():
        return target
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(entry.url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = opener(request, timeout=30)
    except (urllib.error.URLError, OSError) as err:
        raise OfflineError(f"{entry.id}: cannot reach {entry.url} ({getattr(err, 'reason', err)}); "
                           f"download it elsewhere and place it at {target}") from None
    with response:  # only now, with a server answering, is the folder created
        if start and getattr(response, "status", 206) != 206:
            start = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else (entry.size or 0)
        target.parent.mkdir(parents=True, exist_ok=True)
        _stream(response, part, start, total, progress, f"{entry.id}: download from {entry.url}")
    digest = _read_sha256(part)
    want, who = pins.expected(entry)
    if want and digest != want:
        part.unlink()
        raise PitiError(f"{entry.id}: checksum mismatch after download (got {digest[:12]}…, "
                        f"expected {want[:12]}…, {who}); the partial file was removed")
    if want is None:
        pins.pin(entry.id, digest, entry.url)  # no published sum: this download's is held from now on
    os.replace(part, target)
    hash_cache.store(*hash_cache.stamp(target), digest)  # the first `piti sample` need not re-read it
    return target


def _stream(response, part: Path, start: int, total: int, progress, what: str) -> None:
    """Append the response body to `part`. A transfer that breaks off, or ends short of its
    Content-Length (http.client then just returns no more bytes), keeps what arrived, so the
    next fetch resumes from there; nothing is kept when nothing arrived."""
    done = start
    problem = None
    try:
        with open(part, "ab" if start else "wb") as f:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except (OSError, http.client.HTTPException) as err:  # reset, timeout
        problem = str(err) or type(err).__name__
    if problem is None and response.headers.get("Content-Length") and done < total:
        problem = f"expected {total:,}"
    if problem is None:
        return
    if part.exists() and part.stat().st_size == 0:
        part.unlink()
    raise OfflineError(f"{what} broke off at {done:,} bytes ({problem}); run the same command again "
                       f"to resume from {part}")
