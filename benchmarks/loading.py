"""Load + hash cost of a full-size checkpoint, as `piti sample` pays it per model, before and
after the sha256 cache (`piti_cli.checkpoints.hash_cache`).

Writes the full `piti-base-mask` preset (random weights, about 1.35 GB) into a temporary
folder, then times in one run: loading it (`checkpoints.convert.load_model`, strict), reading
its sha256 (`sha256_file(cached=False)`, the file already in the page cache: the cheapest an
uncached hash gets), and the cached lookup. The file and its private piti home are deleted
afterwards.

    python benchmarks/loading.py [--preset piti-base-mask] [--dir /tmp] [--reps 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def timed(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="piti-base-mask")
    parser.add_argument("--dir", default=None, help="where the temporary checkpoint is written")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="piti-loading-") as tmp:
        os.environ["PITI_HOME"] = str(Path(tmp) / "home")  # never the user's cache
        import torch

        from piti_cli.checkpoints.convert import load_model
        from piti_cli.checkpoints.registry import sha256_file
        from piti_cli.models.config import PRESETS
        from piti_cli.models.piti import build_model

        path = Path(tmp) / f"{args.preset}.pt"
        torch.manual_seed(0)
        torch.save(build_model(PRESETS[args.preset]).state_dict(), path)
        size_gb = path.stat().st_size / 1e9
        load_s = timed(lambda: load_model(path), args.reps)
        hash_s = timed(lambda: sha256_file(path, cached=False), args.reps)  # also fills the cache
        cached_s = timed(lambda: sha256_file(path), max(args.reps, 5))
        assert sha256_file(path) == sha256_file(path, cached=False)
    before, after = load_s + hash_s, load_s + cached_s
    print(f"{args.preset}: {size_gb:.2f} GB checkpoint, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"  load (strict)           {load_s:7.2f} s")
    print(f"  sha256, read the file   {hash_s:7.2f} s  ({size_gb / hash_s:.2f} GB/s, page cache warm)")
    print(f"  sha256, cached          {cached_s * 1e3:7.2f} ms")
    print(f"  load + hash: before {before:.2f} s, after {after:.2f} s: {before / after:.2f}x faster "
          f"({2 * (before - after):.1f} s saved per `piti sample` run with two such files)")


if __name__ == "__main__":
    main()
