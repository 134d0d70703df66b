"""Throughput of `piti prep`: HED images/s and pack pairs/s on this machine (one run).

    python -m benchmarks.prep [--device auto] [--hed-images 32] [--pairs 128] [--workers 2]

HED runs the bundled-weight network on 256x256 real photos (skimage) in batches of 8.
Pack builds a COCO-Stuff-layout folder of 640x480 JPEGs with label PNGs, then packs it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata

from piti_cli.data_prep.hed import hed_probabilities, load_hed
from piti_cli.data_prep.pack import pack_split
from piti_cli.data.images import resize_bicubic
from piti_cli.runtime import resolve_device


def bench_hed(device: str, n: int, batch: int) -> float:
    dev = resolve_device(device)
    model = load_hed("bundled", dev)
    photos = [resize_bicubic(f(), 256) for f in (skdata.astronaut, skdata.coffee, skdata.chelsea)]
    imgs = np.stack([photos[i % 3] for i in range(batch)])
    hed_probabilities(model, imgs, dev)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    done = 0
    while done < n:
        hed_probabilities(model, imgs, dev)
        done += batch
    return done / (time.perf_counter() - t), str(dev)


def bench_pack(n: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "coco"
        (root / "images/train2017").mkdir(parents=True)
        (root / "annotations/train2017").mkdir(parents=True)
        photos = [np.asarray(Image.fromarray(f()).resize((640, 480))) for f in (skdata.astronaut, skdata.coffee, skdata.chelsea)]
        rng = np.random.default_rng(0)
        for i in range(n):
            Image.fromarray(photos[i % 3]).save(root / f"images/train2017/{i:012d}.jpg", quality=90)
            lab = rng.integers(0, 182, (480 // 40, 640 // 40), dtype=np.uint8).repeat(40, 0).repeat(40, 1)
            Image.fromarray(lab, mode="L").save(root / f"annotations/train2017/{i:012d}.png")
        rep = pack_split("coco-stuff", root, Path(tmp) / "out.h5", split="train", workers=workers)
        return rep.written / rep.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--hed-images", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    rate, dev = bench_hed(args.device, args.hed_images, args.batch)
    print(f"hed: {rate:.2f} images/s (256x256, batch {args.batch}, {dev})")
    print(f"pack: {bench_pack(args.pairs, args.workers):.1f} pairs/s (coco-stuff, 640x480 jpg, {args.workers} threads)")


if __name__ == "__main__":
    main()
