"""The demo pair on mask shapes its training scenes never draw (they draw axis-aligned rectangles
and discs): rotated ellipses, triangles and diagonal bands, in the demo's four classes.

    python -m recipes.novel_shapes [--per-kind 4] [--precision auto]

Samples them with the README command's settings (guidance 8, 50 ancestral base steps, the
upsampler from t = 300) through the Python API — the bytes `piti sample` writes — and prints
the agreement at 256 px (the share of pixels whose colour names the class under the mask,
`piti_cli.data.scenes.colour_accuracy`) per kind and overall. Masks are drawn from a fixed seed.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from piti_cli import PitiPipeline
from piti_cli.data.images import to_unit
from piti_cli.data.scenes import CLASS_NAMES, MASK_COLOURS, colour_accuracy

SIZE = 256
KINDS = ("ellipse", "triangle", "band")


def novel_mask(rng: np.random.Generator, kind: str) -> np.ndarray:
    """(256, 256) class ids: a background class and 2–3 shapes of `kind`, each of another class
    than the one under its centre."""
    k = len(CLASS_NAMES)
    mask = np.full((SIZE, SIZE), rng.integers(k), dtype=np.uint8)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    for _ in range(rng.integers(2, 4)):
        if kind == "ellipse":
            cy, cx = rng.uniform(40, SIZE - 40, size=2)
            a, b = rng.uniform(30, 100), rng.uniform(15, 45)
            t = rng.uniform(0, np.pi)
            u, v = (x - cx) * np.cos(t) + (y - cy) * np.sin(t), -(x - cx) * np.sin(t) + (y - cy) * np.cos(t)
            inside = (u / a) ** 2 + (v / b) ** 2 < 1
        elif kind == "triangle":
            p = rng.uniform(0, SIZE, size=(3, 2))
            d = [(x - p[i, 0]) * (p[(i + 1) % 3, 1] - p[i, 1]) - (y - p[i, 1]) * (p[(i + 1) % 3, 0] - p[i, 0])
                 for i in range(3)]
            inside = ((d[0] >= 0) & (d[1] >= 0) & (d[2] >= 0)) | ((d[0] <= 0) & (d[1] <= 0) & (d[2] <= 0))
        else:  # a band at 20–70° (or its mirror) across the picture
            t = rng.uniform(np.radians(20), np.radians(70)) * rng.choice([-1, 1])
            c, w = rng.uniform(-60, 60), rng.uniform(24, 64)
            inside = np.abs((x - SIZE / 2) * np.cos(t) + (y - SIZE / 2) * np.sin(t) - c) < w / 2
        if inside.mean() < 0.02:
            continue
        centre = mask[inside][len(mask[inside]) // 2]
        mask[inside] = (centre + rng.integers(1, k)) % k
    return mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=4)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--seed", type=int, default=7, help="the masks' seed")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    masks = {kind: [novel_mask(rng, kind) for _ in range(args.per_kind)] for kind in KINDS}
    pipe = PitiPipeline.from_pretrained(precision=args.precision)
    result = {"precision": pipe.precision, "kinds": {}}
    for kind, ms in masks.items():
        out = pipe([MASK_COLOURS[m] for m in ms], guidance_scale=8, num_inference_steps=50, upsample_start=300)
        each = [colour_accuracy(torch.from_numpy(to_unit(np.asarray(im)))[None], m[None])
                for im, m in zip(out.images, ms)]
        result["kinds"][kind] = each
        print(f"{kind}: " + ", ".join(f"{a:.3f}" for a in each), flush=True)
    every = [a for each in result["kinds"].values() for a in each]
    result.update(mean=float(np.mean(every)), lowest=float(np.min(every)))
    print(f"all {len(every)} novel masks ({pipe.precision}): mean {result['mean']:.3f}, lowest {result['lowest']:.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
