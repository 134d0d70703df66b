"""Find (image, condition) pairs in the dataset layouts `piti prep pack` understands, and load
one pair as 256x256 arrays in the stored form of `piti_cli.data.schema`.

* coco-stuff: ``ROOT/images/{train2017,val2017}/*.jpg`` + ``ROOT/annotations/<same>/*.png``
  (stuffthingmaps: ids 0..181, 255 unlabeled).  ``--split train`` means train2017.
* ade20k: ``ROOT[/ADEChallengeData2016]/images/{training,validation}/*.jpg`` +
  ``annotations/<same>/*.png`` (0 other, 1..150).  ``train``/``val`` are accepted too.
* diode: ``ROOT/{train,val}/{indoors,outdoor}/scene_*/scan_*/X{.png,_depth.npy,...}``.
* generic: an images folder (ROOT) and a conditions folder matched by relative path without
  suffix; the condition is a ``sketch`` (binarised at 128), an ``rgb`` picture, or a ``mask``
  (label-id PNG, or colour PNG decoded with the palette).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from piti_cli.data.images import IMAGE_SUFFIXES, list_images, read_image, resize_bicubic, resize_nearest
from piti_cli.data.palettes import decode_color_mask
from piti_cli.errors import InputError

DATASET_CONDITION = {"coco-stuff": "mask", "ade20k": "mask", "diode": "depth"}
GENERIC_CONDITIONS = ("sketch", "rgb", "mask")
MAX_LABEL = {"coco-stuff": (181, (255,)), "ade20k": (150, ())}


@dataclass(frozen=True)
class Pair:
    source_id: str
    image: Path
    condition: Path  # for diode: the view stem (X without suffix)


def _split_dir(base: Path, split: str, names: dict[str, str]) -> Path:
    for cand in (split, names.get(split, split)):
        if (base / cand).is_dir():
            return base / cand
    raise InputError(f"{base}: no folder for split {split!r} (tried {split}, {names.get(split, split)})")


def _by_key(files: list[Path], root: Path) -> dict[str, Path]:
    """{relative path without suffix: file}; two files with one key (`p0.png`, `p0.jpg`) are
    an `InputError` naming both, never one silently dropped."""
    found: dict[str, Path] = {}
    for path in files:
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in found:
            raise InputError(f"{found[key]} and {path}: two files for one sample {key!r}; keep one of them")
        found[key] = path
    return found


def _match(images: list[Path], img_root: Path, conds: list[Path], cond_root: Path):
    by_key_i, by_key_c = _by_key(images, img_root), _by_key(conds, cond_root)
    pairs = [Pair(k, by_key_i[k], by_key_c[k]) for k in sorted(by_key_i) if k in by_key_c]
    missing = [(k, "no condition file") for k in sorted(by_key_i) if k not in by_key_c]
    missing += [(k, "no image file") for k in sorted(by_key_c) if k not in by_key_i]
    return pairs, missing


def discover(dataset: str, root: str | Path, split: str, conditions_dir: str | Path | None = None):
    """(pairs, missing) for one split; `missing` lists (source_id, reason) of unmatched files."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    if dataset == "coco-stuff":
        names = {"train": "train2017", "val": "val2017"}
        img_dir = _split_dir(root / "images", split, names)
        ann_dir = _split_dir(root / "annotations", split, names)
        return _match(list_images(img_dir), img_dir, list_images(ann_dir, (".png",)), ann_dir)
    if dataset == "ade20k":
        base = root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root
        names = {"train": "training", "val": "validation"}
        img_dir = _split_dir(base / "images", split, names)
        ann_dir = _split_dir(base / "annotations", split, names)
        return _match(list_images(img_dir), img_dir, list_images(ann_dir, (".png",)), ann_dir)
    if dataset == "diode":
        from piti_cli.data_prep.depth import diode_missing, list_diode

        split_dir = _split_dir(root, split, {})
        pairs, missing = [], []
        stems = set(list_diode(split_dir))
        # views that have an image but no depth file are missing pairs too
        stems_img = {p.with_suffix("") for p in split_dir.rglob("*.png")}
        for stem in sorted(stems | stems_img):
            key = str(stem.relative_to(split_dir))
            lacking = diode_missing(stem)
            if lacking:
                missing.append((key, "missing " + ", ".join(lacking)))
            else:
                pairs.append(Pair(key, stem.with_name(stem.name + ".png"), stem))
        return pairs, missing
    if dataset == "generic":
        if conditions_dir is None:
            raise InputError("generic packs need --conditions DIR (condition files matched by name)")
        cdir = Path(conditions_dir)
        return _match(list_images(root), root, list_images(cdir, IMAGE_SUFFIXES), cdir)
    raise InputError(f"unknown dataset {dataset!r}; choose coco-stuff, ade20k, diode or generic")


def _labels(path: Path, palette_name: str) -> np.ndarray:
    stored = read_image(path, "raw")
    if stored.ndim == 3:  # a colour mask
        try:
            labels = decode_color_mask(np.ascontiguousarray(stored[..., :3]), palette_name).astype(np.int64)
        except ValueError as err:
            raise InputError(f"{path}: {err}") from None
    else:
        labels = stored.astype(np.int64)
    top, extra = MAX_LABEL[palette_name]
    bad = (labels > top) & ~np.isin(labels, extra)
    if bad.any() or labels.min(initial=0) < 0:
        raise InputError(f"{path}: label ids outside {palette_name} (e.g. {int(labels[bad][0]) if bad.any() else int(labels.min())})")
    return labels


def load_pair(pair: Pair, dataset: str, kind: str, palette_name: str | None) -> dict:
    """Arrays of one sample keyed by schema path names; raises InputError when unreadable."""
    if dataset == "diode":
        from piti_cli.data_prep.depth import load_diode_256

        v = load_diode_256(pair.condition)
        return {
            "images": v["image"], "original_sizes": np.array(v["original_size"], np.int32),
            "conditions/depth": v["depth"], "conditions/depth_valid": v["depth_valid"],
            "conditions/normal": v["normal"],
        }
    rgb = read_image(pair.image, "RGB")
    out = {"images": resize_bicubic(rgb, 256), "original_sizes": np.array(rgb.shape[:2], np.int32)}
    if kind == "mask":
        out["conditions/mask"] = resize_nearest(_labels(pair.condition, palette_name).astype(np.uint8), 256)
    elif kind == "sketch":
        grey = read_image(pair.condition, "L")
        out["conditions/sketch"] = (resize_nearest(grey, 256) >= 128).astype(np.uint8)
    elif kind == "rgb":
        out["conditions/rgb"] = resize_nearest(read_image(pair.condition, "RGB"), 256)
    else:
        raise InputError(f"unknown condition kind {kind!r}")
    return out
