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
"""

from __future__ import annotations

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

# channels of the model condition tensor per kind
CONDITION_CHANNELS = {"mask": 3, "sketch": 1, "rgb": 3, "depth": 6}


def condition_paths(kind: str) -> tuple[str, ...]:
    """HDF5 paths of the arrays that make up one stored condition of `kind`."""
    return tuple(f"conditions/{name}" for name in CONDITION_KINDS[kind])
