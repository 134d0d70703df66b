"""FID (and optionally KID) of generated images against a reference, per feature network.

The reference is an image folder, an HDF5 pack, or a statistics file from `piti eval stats`.
Reference statistics computed from images are cached under `$PITI_CACHE_DIR/eval-stats`
(default `~/.cache/piti/eval-stats`), keyed by the files, N and the feature network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable


from piti_cli.errors import InputError
from piti_cli.metrics import stats as stats_mod
from piti_cli.metrics.features import FeatureExtractor, extract_features
from piti_cli.metrics.frechet import frechet_distance
from piti_cli.metrics.images import open_source
from piti_cli.metrics.kid import kernel_distance


def is_stats_file(path: str | Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() == ".npz"


def open_sets(gen: str | Path, ref: str | Path, num: int | None = None):
    """(generated source, reference source or None, reference statistics or None, N generated,
    N reference images): `InputError` for what the user typed (statistics given as the
    generated set, an unreadable set, fewer than 2 images) before any network is loaded."""
    if is_stats_file(gen):
        raise InputError(f"{gen}: generated images must be a folder or an HDF5 pack, not statistics")
    gen_source = open_source(gen)
    ref_stats_file, ref_source = None, None
    if is_stats_file(ref):
        ref_stats_file = stats_mod.load_stats(ref)
    else:
        ref_source = open_source(ref)
    n_gen = len(gen_source) if num is None else min(num, len(gen_source))
    n_ref_images = 0 if ref_source is None else (len(ref_source) if num is None else min(num, len(ref_source)))
    for path, n in ((gen, n_gen), (ref, n_ref_images if ref_source is not None else 2)):
        if n < 2:
            raise InputError(f"{path}: {n} image(s); FID needs at least 2 (and far more to mean anything)")
    return gen_source, ref_source, ref_stats_file, n_gen, n_ref_images


def evaluate_fid(
    gen: str | Path,
    ref: str | Path,
    extractors: list[FeatureExtractor],
    num: int | None = None,
    batch_size: int = 32,
    workers: int = 2,
    kid: bool = False,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Result dict: per network FID (and KID), N, network name and weights hash, preprocessing."""
    gen_source, ref_source, ref_stats_file, n_gen, n_ref_images = open_sets(gen, ref, num)
    ref_kind = "stats" if ref_source is None else ref_source.kind

    done = [0]
    total = len(extractors) * (n_gen + n_ref_images)

    def step(offset: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda d, _t: progress(offset + d, total)

    result = {
        "gen": {"path": str(gen), "n": n_gen},
        "ref": {"path": str(ref), "type": ref_kind},
        "metrics": {},
        "warnings": [],
    }
    for ex in extractors:
        identity = ex.identity()
        if ref_stats_file is not None:
            ref_st = stats_mod.select(Path(ref), ref_stats_file, ex.kind, identity)
            if ref_st.identity is None:
                result["warnings"].append(
                    f"{ref}: statistics of unknown origin (plain mu/sigma); make sure they used {ex.name} "
                    f"and the same preprocessing"
                )
        else:
            ref_st = _reference_from_images(ref_source, ex, num, batch_size, workers, kid, use_cache, step(done[0]))
            done[0] += n_ref_images
            if progress:
                progress(done[0], total)
        gen_feats = extract_features(gen_source, ex, n_gen, batch_size, workers, step(done[0]))
        done[0] += n_gen
        gen_st = stats_mod.from_features(gen_feats, identity)
        entry = {
            "fid": frechet_distance(gen_st.mu, gen_st.sigma, ref_st.mu, ref_st.sigma),
            "n_gen": n_gen,
            "n_ref": ref_st.n,
            **identity,
            "weights_file": ex.weights_file,
        }
        if kid:
            if ref_st.features is None:
                result["warnings"].append(
                    f"{ref}: no stored {ex.kind} features, KID skipped; make statistics with `piti eval stats --keep-features`"
                )
            else:
                mean, std = kernel_distance(gen_feats, ref_st.features, kid_subsets, kid_subset_size, seed)
                entry.update(kid=mean, kid_std=std, kid_subsets=kid_subsets,
                             kid_subset_size=min(kid_subset_size, n_gen, ref_st.features.shape[0]), kid_seed=seed)
        n_min = min(n_gen, ref_st.n) if ref_st.n > 0 else n_gen
        if n_min < ex.dim:
            result["warnings"].append(
                f"{ex.kind}: N={n_min} is below the feature dimension {ex.dim}; FID is biased upwards and "
                "only comparable at equal N — prefer --kid for small sets"
            )
        result["metrics"][ex.kind] = entry
    result["ref"]["n"] = {k: v["n_ref"] for k, v in result["metrics"].items()}
    return result


def _reference_from_images(source, ex, num, batch_size, workers, keep_features, use_cache, progress):
    identity = ex.identity()
    key = stats_mod.cache_key(source, num, identity) if use_cache else None
    if key is not None:
        hit = stats_mod.cached(key, ex.kind, identity)
        if hit is not None and (hit.features is not None or not keep_features):
            return hit
    feats = extract_features(source, ex, num, batch_size, workers, progress)
    st = stats_mod.from_features(feats, identity, keep_features=keep_features)
    if key is not None:
        stats_mod.store(key, ex.kind, st, str(source.root))
    return st


def compute_stats(
    source_path: str | Path,
    extractors: list[FeatureExtractor],
    num: int | None = None,
    batch_size: int = 32,
    workers: int = 2,
    keep_features: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, stats_mod.Stats]:
    """Statistics of a folder or pack for `piti eval stats`."""
    source = open_source(source_path)
    n = len(source) if num is None else min(num, len(source))
    if n < 2:
        raise InputError(f"{source_path}: {n} image(s); statistics need at least 2")
    out = {}
    for i, ex in enumerate(extractors):
        cb = None if progress is None else (lambda d, _t, off=i * n: progress(off + d, n * len(extractors)))
        feats = extract_features(source, ex, n, batch_size, workers, cb)
        out[ex.kind] = stats_mod.from_features(feats, ex.identity(), keep_features)
    return out


__all__ = ["evaluate_fid", "compute_stats", "is_stats_file"]
