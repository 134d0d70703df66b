"""Where weight files are looked up (explicit > $PITI_WEIGHTS_DIR > user cache > bundled) and the
sha256 cache, checked against files placed in temporary folders and hashlib itself."""

import hashlib
import json
import os

import pytest

from piti_cli.checkpoints import hash_cache
from piti_cli.checkpoints.registry import (
    BUNDLED_DIR, WeightEntry, get_entry, locate, resolve, search_dirs, sha256_file, weights_dir,
)
from piti_cli.errors import InputError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PITI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PITI_WEIGHTS_DIR", raising=False)
    return tmp_path / "home"


def _place(folder, name, data=b"w"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def test_lookup_order_explicit_env_cache_bundled(tmp_path, home, monkeypatch):
    demo = get_entry("piti-demo-base")  # bundled: the last resort
    assert locate(demo) == BUNDLED_DIR / demo.filename
    cached = _place(home / "weights", demo.filename)
    assert locate(demo) == cached
    env = _place(tmp_path / "env", demo.filename)
    monkeypatch.setenv("PITI_WEIGHTS_DIR", str(tmp_path / "env"))
    assert locate(demo) == env
    explicit = _place(tmp_path / "explicit", demo.filename)
    assert locate(demo, tmp_path / "explicit") == explicit
    assert search_dirs(tmp_path / "explicit") == [tmp_path / "explicit", tmp_path / "env", home / "weights", BUNDLED_DIR]
    # a folder that lacks the file passes the lookup on to the next one
    assert locate(demo, tmp_path / "empty") == env


def test_downloads_go_to_explicit_then_env_then_cache(tmp_path, home, monkeypatch):
    assert weights_dir() == home / "weights"
    monkeypatch.setenv("PITI_WEIGHTS_DIR", str(tmp_path / "env"))
    assert weights_dir() == tmp_path / "env"
    assert weights_dir(tmp_path / "x") == tmp_path / "x"


def test_missing_file_names_the_folders_and_the_fix(tmp_path, home):
    with pytest.raises(InputError) as err:
        resolve("glide-base", tmp_path / "mine")
    message = str(err.value)
    assert "glide_base.pt" in message and str(tmp_path / "mine") in message and str(home / "weights") in message
    assert "piti weights fetch glide-base" in message and "\n" not in message


def test_an_entry_not_bundled_is_found_in_the_cache(home):
    entry = WeightEntry("x", "x.bin", "checkpoint", "download", "http://127.0.0.1:9/x")
    assert locate(entry) is None and not home.exists()  # looking creates nothing
    path = _place(home / "weights", "x.bin")
    assert locate(entry) == path


def test_hash_cache_reuses_a_digest_until_the_file_changes(tmp_path, home):
    path = _place(tmp_path, "m.bin", b"a" * 5000)
    truth = hashlib.sha256(b"a" * 5000).hexdigest()
    assert sha256_file(path) == truth
    assert json.loads(hash_cache.cache_file().read_text())["entries"][str(path.resolve())]["sha256"] == truth
    # Same size, mtime and inode, other bytes: the cache answers (that is what it is for) ...
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(b"b" * 5000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sha256_file(path) == truth
    new = hashlib.sha256(b"b" * 5000).hexdigest()
    assert sha256_file(path, cached=False) == new  # ... and an uncached read sees the bytes
    # a changed mtime invalidates
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with open(path, "r+b") as f:
        f.write(b"c" * 5000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sha256_file(path) == new  # stamp unchanged: still the cached value
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert sha256_file(path) == hashlib.sha256(b"c" * 5000).hexdigest()
    # a changed size invalidates, whatever the mtime
    mtime = os.stat(path).st_mtime_ns
    with open(path, "ab") as f:
        f.write(b"c")
    os.utime(path, ns=(st.st_atime_ns, mtime))
    assert sha256_file(path) == hashlib.sha256(b"c" * 5001).hexdigest()


def test_a_file_renamed_over_the_old_one_misses(tmp_path, home):
    path = _place(tmp_path, "m.bin", b"old!")
    st = os.stat(path)
    assert sha256_file(path) == hashlib.sha256(b"old!").hexdigest()
    replacement = _place(tmp_path, "m.bin.tmp", b"new!")
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, path)  # same path, size and mtime, another inode
    assert sha256_file(path) == hashlib.sha256(b"new!").hexdigest()


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b'{"format": "piti-sha256-cache", "entries": 3}',
                                     b'{"format": "piti-sha256-cache", "entries": {"k": 1}}', b"\xff\xfe"])
def test_a_corrupt_cache_file_counts_as_empty_and_is_rewritten(tmp_path, home, garbage):
    path = _place(tmp_path, "m.bin", b"payload")
    home.mkdir()
    hash_cache.cache_file().write_bytes(garbage)
    assert sha256_file(path) == hashlib.sha256(b"payload").hexdigest()
    entries = json.loads(hash_cache.cache_file().read_text())["entries"]
    assert entries[str(path.resolve())]["sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert sha256_file(path) == hashlib.sha256(b"payload").hexdigest()


def test_hash_cache_keeps_a_bounded_number_of_entries(tmp_path, home, monkeypatch):
    monkeypatch.setattr(hash_cache, "MAX_ENTRIES", 3)
    paths = [_place(tmp_path, f"f{i}", bytes([i])) for i in range(5)]
    for path in paths:
        sha256_file(path)
    kept = json.loads(hash_cache.cache_file().read_text())["entries"]
    assert list(kept) == [str(p.resolve()) for p in paths[-3:]]


def test_every_bundled_file_is_shipped_in_the_wheel():
    """pyproject's package data for `piti_weights` (the repository's weights/) covers the
    manifest and every file the manifest calls bundled, so a wheel carries them."""
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from piti_cli.checkpoints.registry import BUNDLED_PACKAGE, load_manifest

    repo = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][BUNDLED_PACKAGE]
    bundled = ["manifest.json"] + [e.filename for e in load_manifest().values() if e.source == "bundled"]
    assert bundled[1:], "the manifest lists no bundled files"
    for name in bundled:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{name} is not package data"
        assert (repo / "weights" / name).is_file()
    assert f'"{BUNDLED_PACKAGE}": "weights"' in (repo / "setup.py").read_text()
