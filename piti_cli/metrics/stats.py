"""Feature statistics files (`piti eval stats`) and the reference-statistics cache.

A statistics file is an `.npz` (no pickles) holding, per feature network KIND,
`KIND_mu` (D,), `KIND_sigma` (D, D) in float64, optionally `KIND_features` (N, D) float32
(for KID), and `meta`: a JSON string with the format tag, the source, and per network
N, feature_net, dim, weights_sha256 and preprocessing. Comparing against statistics made
by another network, weights or preprocessing is refused with one line saying what differs.
Plain `mu`/`sigma` files (clean-fid / pytorch-fid) are read as statistics of unknown origin.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from piti_cli.errors import InputError, brief
from piti_cli.home import piti_home
from piti_cli.io_utils import atomic_write_bytes
from piti_cli.metrics.frechet import feature_statistics

FORMAT = "piti-eval-stats"
VERSION = 1
ENV_CACHE = "PITI_CACHE_DIR"


@dataclass
class Stats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    identity: dict | None  # None: unknown origin (foreign mu/sigma file)
    features: np.ndarray | None = None


def from_features(features: np.ndarray, identity: dict | None, keep_features: bool = False) -> Stats:
    mu, sigma = feature_statistics(features)
    return Stats(mu, sigma, int(features.shape[0]), identity, features.astype(np.float32) if keep_features else None)


def save_stats(path: str | Path, stats: dict[str, Stats], source: str) -> None:
    meta = {"format": FORMAT, "version": VERSION, "source": source, "networks": {}}
    arrays = {}
    for kind, st in stats.items():
        meta["networks"][kind] = {"n": st.n, **(st.identity or {})}
        arrays[f"{kind}_mu"] = st.mu
        arrays[f"{kind}_sigma"] = st.sigma
        if st.features is not None:
            arrays[f"{kind}_features"] = st.features
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_stats(path: str | Path) -> dict[str, Stats]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            files = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"{path}: not a readable .npz statistics file ({brief(str(err), 120)})") from None
    if "meta" not in files:
        if "mu" in files and "sigma" in files:
            mu, sigma = np.asarray(files["mu"], np.float64), np.asarray(files["sigma"], np.float64)
            _check_shapes(path, "mu/sigma", mu, sigma)
            return {"unknown": Stats(mu, sigma, -1, None)}
        raise InputError(f"{path}: not a statistics file (no 'meta' or 'mu'/'sigma' entries)")
    try:
        meta = json.loads(str(files["meta"]))
    except ValueError:
        raise InputError(f"{path}: statistics file has a corrupt 'meta' entry") from None
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: not a piti statistics file (format {meta.get('format')!r})")
    if int(meta.get("version", 0)) > VERSION:
        raise InputError(f"{path}: statistics format version {meta['version']} is newer than this piti")
    out = {}
    for kind, info in meta.get("networks", {}).items():
        if f"{kind}_mu" not in files or f"{kind}_sigma" not in files:
            raise InputError(f"{path}: statistics for {kind} are listed but {kind}_mu/{kind}_sigma are missing")
        mu, sigma = np.asarray(files[f"{kind}_mu"], np.float64), np.asarray(files[f"{kind}_sigma"], np.float64)
        _check_shapes(path, kind, mu, sigma)
        identity = {k: info[k] for k in ("feature_net", "dim", "weights_sha256", "preprocessing") if k in info}
        feats = files.get(f"{kind}_features")
        out[kind] = Stats(mu, sigma, int(info.get("n", -1)), identity, feats)
    return out


def _check_shapes(path: Path, what: str, mu: np.ndarray, sigma: np.ndarray) -> None:
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise InputError(f"{path}: {what} has mean {mu.shape} and covariance {sigma.shape}, which do not match")


def select(path: Path, available: dict[str, Stats], kind: str, identity: dict) -> Stats:
    """The reference statistics of `kind` in a file, after checking they are comparable."""
    if kind in available:
        st = available[kind]
    elif "unknown" in available:
        st = available["unknown"]
        if st.mu.shape[0] != identity["dim"]:
            raise InputError(
                f"{path}: statistics have dimension {st.mu.shape[0]}, but {identity['feature_net']} features have {identity['dim']}"
            )
        return st
    else:
        have = ", ".join(available) or "none"
        raise InputError(f"{path}: no {kind} statistics in this file (it has: {have}); rerun `piti eval stats --features {kind}`")
    ident = st.identity or {}
    if st.mu.shape[0] != identity["dim"]:
        raise InputError(f"{path}: {kind} statistics have dimension {st.mu.shape[0]}, expected {identity['dim']}")
    for key, label in (("feature_net", "network"), ("weights_sha256", "weights"), ("preprocessing", "preprocessing")):
        if key in ident and ident[key] != identity[key]:
            theirs, ours = str(ident[key]), str(identity[key])
            if key == "weights_sha256":
                theirs, ours = theirs[:12] + "…", ours[:12] + "…"
            raise InputError(f"{path}: {kind} statistics were made with {label} {theirs}, this run uses {ours}")
    return st


# --- cache of reference statistics computed from folders / packs ---------------------------

def cache_dir() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]) / "eval-stats"
    return piti_home() / "eval-stats"  # $PITI_HOME, else the user cache (~/.cache/piti)


def cache_key(source, num: int | None, identity: dict) -> str:
    blob = json.dumps(
        {"source": str(Path(source.root).resolve()), "files": source.fingerprint(), "num": num, **identity},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cached(key: str, kind: str, identity: dict) -> Stats | None:
    path = cache_dir() / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        found = load_stats(path)
        return select(path, found, kind, identity)
    except InputError:
        return None  # a stale or damaged cache entry is recomputed


def store(key: str, kind: str, st: Stats, source: str) -> None:
    try:
        save_stats(cache_dir() / f"{key}.npz", {kind: st}, source)
    except OSError:
        pass  # the cache is an optimisation; a read-only home must not fail the evaluation
