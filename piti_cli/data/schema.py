"""Layout of a packed PITI dataset: one HDF5 file per split.

Root attributes
    format          "piti-pack"
    version         FORMAT_VERSION (int)
    dataset         "coco-stuff" | "ade20k" | "diode" | "generic"
    split           split name as given ("train", "val", ...)
    condition       "mask" | "sketch" | "depth" | "rgb"  (see CONDITION_KINDS)
    resize_policy   RESIZE_POLICY (text)
    config          JSON of the full pack configuration
    count           number of samples
    complete        True once the file is finished (a ``.partial`` file has False)
    skipped         JSON list of [source_id, reason] for pairs that were left out

Datasets (N = count, chunked one sample per chunk)
    images            uint8 (N, 256, 256, 3)   RGB
    source_ids        utf-8 str (N,)           file stem / relative path of the source
    original_sizes    int32 (N, 2)             (height, width) of the source image
    conditions/mask   uint8 (N, 256, 256)      class ids (mask)
    conditions/sketch uint8 (N, 256, 256)      0/1 edge map (sketch)
    conditions/rgb    uint8 (N, 256, 256, 3)   any picture condition (rgb)
    conditions/depth  float32 (N, 256, 256)    metres (depth)
    conditions/depth_valid uint8 (N, 256, 256) 1 where depth is valid (depth)
    conditions/normal float32 (N, 256, 256, 3) unit normals (depth)
    meta/palette      uint8 (256, 3)           colour of each stored class id (mask)
    meta/class_names  utf-8 str (K,)           name of each class id (mask); attr ignore_index
    captions          int32 (N, L)             optional: a caption's token ids, -1 after its end
                                               (what `--stage pretrain` trains a GLIDE model on)
"""

from __future__ import annotations

import json

import numpy as np

from piti_cli.errors import InputError
FORMAT_NAME = "piti-pack"
FORMAT_VERSION = 1
SIZE = 256
RESIZE_POLICY = (
    "squash to 256x256 without cropping (the official loaders' policy): "
    "images bicubic, label/sketch/depth/normal maps nearest"
)

DATASETS = ("coco-stuff", "ade20k", "diode", "generic")

# condition kind -> datasets under /conditions
CONDITION_KINDS: dict[str, tuple[str, ...]] = {
    "mask": ("mask",),
    "sketch": ("sketch",),
    "rgb": ("rgb",),
    "depth": ("depth", "depth_valid", "normal"),
}

# per-sample shape and dtype of each stored array
ARRAY_SPECS: dict[str, tuple[tuple[int, ...], str]] = {
    "images": ((SIZE, SIZE, 3), "uint8"),
    "conditions/mask": ((SIZE, SIZE), "uint8"),
    "conditions/sketch": ((SIZE, SIZE), "uint8"),
    "conditions/rgb": ((SIZE, SIZE, 3), "uint8"),
    "conditions/depth": ((SIZE, SIZE), "float32"),
    "conditions/depth_valid": ((SIZE, SIZE), "uint8"),
    "conditions/normal": ((SIZE, SIZE, 3), "float32"),
}


def condition_paths(kind: str) -> tuple[str, ...]:
    """HDF5 paths of the arrays that make up one stored condition of `kind`."""
    return tuple(f"conditions/{name}" for name in CONDITION_KINDS[kind])


def validate_open_pack(f, path) -> dict:
    """Check an open h5py file against this schema; return its root attributes, decoded.

    Every problem is one `InputError` naming the file: not a pack, too new, unfinished, a
    missing or malformed attribute, a missing dataset, a dataset with fewer rows than `count`
    or with the wrong per-sample shape or dtype, a mask pack without its palette.
    """
    attrs = dict(f.attrs)
    if attrs.get("format") != FORMAT_NAME:
        raise InputError(f"{path}: not a piti pack (format={attrs.get('format')!r})")
    try:
        version = int(attrs.get("version", -1))
    except (TypeError, ValueError):
        raise InputError(f"{path}: bad version attribute {attrs.get('version')!r}") from None
    if version > FORMAT_VERSION:
        raise InputError(f"{path}: pack version {version} is newer than this piti")
    if not bool(attrs.get("complete", False)):
        raise InputError(f"{path}: pack is incomplete; rerun `piti prep pack` to finish it")
    missing = [k for k in ("count", "dataset", "split", "condition", "config") if k not in attrs]
    if missing:
        raise InputError(f"{path}: pack lacks the attribute(s) {', '.join(missing)}")
    out = {"dataset": str(attrs["dataset"]), "split": str(attrs["split"]), "kind": str(attrs["condition"])}
    try:
        out["count"] = int(attrs["count"])
    except (TypeError, ValueError):
        raise InputError(f"{path}: bad count attribute {attrs['count']!r}") from None
    if out["count"] < 0:
        raise InputError(f"{path}: bad count attribute {out['count']}")
    if out["kind"] not in CONDITION_KINDS:
        raise InputError(f"{path}: unknown condition kind {out['kind']!r}")
    for name in ("config", "skipped"):
        try:
            value = json.loads(attrs.get(name, "[]" if name == "skipped" else ""))
        except (TypeError, ValueError):
            raise InputError(f"{path}: the {name} attribute is not valid JSON") from None
        if not isinstance(value, dict if name == "config" else list):
            raise InputError(f"{path}: the {name} attribute is not a JSON {'object' if name == 'config' else 'list'}")
        out[name] = value
    # `piti prep pack` stores 256² samples; a pack written at another square size S (the
    # procedural scenes for tests and recipes) is read as long as every array agrees on S.
    images = f.get("images")
    stored = images.shape[1] if images is not None and len(getattr(images, "shape", ())) == 4 else SIZE

    def at(shape):
        return tuple(stored if d == SIZE else d for d in shape)
    expected = {"images": (at(ARRAY_SPECS["images"][0]), ARRAY_SPECS["images"][1]),
                "source_ids": ((), None), "original_sizes": ((2,), None)}
    expected.update({p: (at(ARRAY_SPECS[p][0]), ARRAY_SPECS[p][1]) for p in condition_paths(out["kind"])})
    for name, (shape, dtype) in expected.items():
        ds = f.get(name)
        if ds is None or not hasattr(ds, "shape"):
            raise InputError(f"{path}: pack lacks the dataset /{name}")
        if len(ds.shape) < 1 or ds.shape[0] < out["count"]:
            raise InputError(f"{path}: /{name} has {ds.shape[0] if ds.shape else 0} rows, count says {out['count']}")
        if tuple(ds.shape[1:]) != shape or (dtype is not None and ds.dtype != np.dtype(dtype)):
            raise InputError(f"{path}: /{name} is {ds.dtype} {tuple(ds.shape[1:])} per sample, "
                             f"expected {dtype or ds.dtype} {shape}")
    captions = f.get("captions")
    if captions is not None:
        shape = getattr(captions, "shape", ())
        if len(shape) != 2 or shape[0] < out["count"] or getattr(captions, "dtype", None) != np.dtype("int32"):
            raise InputError(f"{path}: /captions must be int32 (count, length) token ids")
    out["caption_length"] = int(captions.shape[1]) if captions is not None else 0
    palette = f.get("meta/palette")
    if out["kind"] == "mask" and (palette is None or tuple(getattr(palette, "shape", ())) != (256, 3)):
        raise InputError(f"{path}: mask pack without a (256, 3) /meta/palette")
    return out
