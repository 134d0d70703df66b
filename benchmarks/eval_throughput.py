"""Images per second of `piti eval stats` feature extraction against clean-fid's own loop.

One folder of PNGs (rendered demo scenes, 256²), one network: the FID Inception-v3 with one
random state dict in the pytorch-fid layout (no downloads; the cost does not depend on the
weights). piti loads it from a file through `piti eval stats`'s own path
(`metrics.features.build_extractor` → `metrics.fid.compute_stats`); clean-fid builds its
pytorch Inception (`cleanfid.features.feature_extractor("pytorch_inception")`) with the same
state dict handed to it in place of the download, and runs its public
`cleanfid.fid.get_folder_features` in "clean" mode (PIL bicubic on float channels, as piti).
Both in this process, alternating, at the batch sizes and loader workers given, `--rounds`
times (the best rate of each counts: the machine is shared); the features of the two are
compared as a check that they computed the same thing.

    python -m benchmarks.eval_throughput                   # 64 images
    python -m benchmarks.eval_throughput --count 256 --batch 16,32,64 --workers 0,2
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import REPO, alternating, setup


def scene_folder(folder: Path, count: int) -> Path:
    from PIL import Image

    from piti_cli.data.scenes import make_scenes

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) != count:
        for old in folder.glob("*.png"):
            old.unlink()
        images, _ = make_scenes(count, seed=7)
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"scene_{i:04d}.png")
    return folder


def random_inception_file(path: Path) -> dict:
    """A random FID Inception state dict in the pytorch-fid layout, saved for piti's loader."""
    from piti_cli.io_utils import atomic_torch_save
    from piti_cli.metrics.inception import FIDInceptionV3

    torch.manual_seed(0)
    state = FIDInceptionV3().state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand_like(value)
        elif value.dtype.is_floating_point:
            state[key] = value + 0.01 * torch.randn_like(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(state, path)
    return state


def clean_fid_model(state: dict):
    """clean-fid's own pytorch Inception feature function, built from `state` instead of its download."""
    import cleanfid.inception_pytorch as inception_pytorch
    from cleanfid.features import feature_extractor

    original = inception_pytorch.load_state_dict_from_url
    inception_pytorch.load_state_dict_from_url = lambda *args, **kwargs: state
    try:
        return feature_extractor(name="pytorch_inception", device=torch.device("cpu"), use_dataparallel=False)
    finally:
        inception_pytorch.load_state_dict_from_url = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--batch", default="32", help="batch sizes to try, comma-separated")
    ap.add_argument("--workers", default="2", help="loader workers to try (piti: threads, at least 1; clean-fid: processes, 0 = none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="alternate this many times; the best rate of each counts")
    args = ap.parse_args()
    print(setup(args.threads))
    from cleanfid.fid import get_folder_features
    from PIL import Image

    from piti_cli.metrics.features import build_extractor
    from piti_cli.metrics.fid import compute_stats

    work = REPO / "runs" / "eval_throughput"
    folder = scene_folder(work / "images", args.count)
    weights = work / "fid_inception_random.pth"
    state = random_inception_file(weights)
    extractor = build_extractor("inception", "cpu", weights=str(weights))
    with warnings.catch_warnings():  # torchvision's notes on its `pretrained` argument, which clean-fid passes
        warnings.simplefilter("ignore", UserWarning)
        theirs = clean_fid_model(state)
    print(f"{args.count} PNGs (256²) in {folder.relative_to(REPO)}; FID Inception-v3, random weights shared")

    def piti_run(batch: int, workers: int) -> np.ndarray:
        return compute_stats(folder, [extractor], None, batch, workers, keep_features=True)["inception"].features

    def clean_fid_run(batch: int, workers: int) -> np.ndarray:
        return get_folder_features(str(folder), model=theirs, num_workers=workers, batch_size=batch,
                                   device=torch.device("cpu"), mode="clean", verbose=False)

    piti_run(8, 1)  # warm-up (oneDNN primitives) on both sides
    clean_fid_run(8, 0)
    print(f"  {'loop':<10}{'batch':>6}{'workers':>8}{'images/s':>10}")
    rates, features = {}, {}
    configs = [(int(b), int(w)) for b in args.batch.split(",") for w in args.workers.split(",")]
    for _ in range(args.rounds):
        for batch, workers in configs:
            for name, run in (("piti", piti_run), ("clean-fid", clean_fid_run)):
                start = time.perf_counter()
                features[name] = run(batch, workers)
                rate = args.count / (time.perf_counter() - start)
                rates[(name, batch, workers)] = max(rate, rates.get((name, batch, workers), 0.0))
                print(f"  {name:<10}{batch:>6}{workers:>8}{rate:>10.2f}", flush=True)
    batch = torch.from_numpy(np.stack([extractor.preprocess(np.asarray(Image.open(f).convert("RGB")))
                                       for f in sorted(folder.glob("*.png"))[:16]]))
    with torch.inference_mode():
        ours, theirs_s = alternating(lambda: extractor.network(batch), lambda: theirs(batch), args.rounds + 1)
    print(f"the networks alone, batch {len(batch)}: piti {len(batch) / ours:.2f} images/s, "
          f"clean-fid {len(batch) / theirs_s:.2f} images/s ({theirs_s / ours:.2f}×)")
    a, b = features["piti"], features["clean-fid"]
    print(f"features agree: max |piti − clean-fid| / max |clean-fid| = {np.abs(a - b).max() / np.abs(b).max():.1e}")
    best = {name: max((r, k) for k, r in rates.items() if k[0] == name) for name in ("piti", "clean-fid")}
    for name, (rate, key) in best.items():
        print(f"best {name}: {rate:.2f} images/s at batch {key[1]}, {key[2]} workers")
    print(f"piti / clean-fid, best of each: {best['piti'][0] / best['clean-fid'][0]:.2f}×")
    for key in sorted({k[1:] for k in rates}):
        print(f"piti / clean-fid at batch {key[0]}, {key[1]} workers: "
              f"{rates[('piti', *key)] / rates[('clean-fid', *key)]:.2f}×")


if __name__ == "__main__":
    main()
