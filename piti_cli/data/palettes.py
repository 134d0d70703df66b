"""Class names and colour palettes of the segmentation datasets PITI uses.

The official mask models consume *colour* masks made with the PASCAL-VOC colour map: the
bit-interleaving map where id ``j`` takes bits 0, 1, 2 of ``j`` as the top bits of R, G, B,
bits 3, 4, 5 as the next bits, and so on.  Entry 0 is black, entry 1 is (128, 0, 0).

* COCO-Stuff stuff+thing maps store ids 0..181 (0 = person) and 255 = unlabeled.  Class ``c``
  gets colour-map entry ``c + 1`` (so person -> (128, 0, 0)); unlabeled is black.
* ADE20K (``ADEChallengeData2016``) stores 0 = "other" and 1..150.  We use the same colour map
  with label ``l`` -> entry ``l``: "other" is black, wall (1) is (128, 0, 0).  The official PITI
  ADE20K model was trained on the full-dataset ``_seg.png`` files instead, so this palette is
  our documented choice, not a reproduction.

Every palette here is a (256, 3) uint8 table indexed by the *stored* label value, so a colour
mask is just ``palette[labels]``.
"""

from __future__ import annotations

import numpy as np

COCO_UNLABELED = 255
ADE_OTHER = 0

# COCO-Stuff 182 ids as in the stuffthingmaps PNGs (labels.txt id minus one).  Thing ids
# include the 11 COCO ids that have no annotations (street sign, hat, shoe, ...).
COCO_STUFF_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    "hat", "backpack", "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase",
    "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror",
    "dining table", "window", "desk", "toilet", "door", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds",
    "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence",
    "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog",
    "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house",
    "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net",
    "paper", "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield",
    "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf",
    "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)

# ADE20K SceneParsing 150 classes, label 1..150 (0 is "other").
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van",
    "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light",
    "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board",
    "shower", "radiator", "glass", "clock", "flag",
)

assert len(COCO_STUFF_CLASSES) == 182 and len(ADE20K_CLASSES) == 150


def voc_colormap(n: int = 256) -> np.ndarray:
    """(n, 3) uint8 PASCAL-VOC colour map: entry j interleaves the bits of j into R, G, B."""
    ids = np.arange(n, dtype=np.int64)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):  # 8 rounds cover ids < 2**24
        for channel in range(3):
            bit = (ids >> (3 * shift + channel)) & 1
            cmap[:, channel] |= bit << (7 - shift)
    return cmap.astype(np.uint8)


def coco_stuff_palette() -> np.ndarray:
    """(256, 3) table for stored COCO-Stuff ids: id c -> colour-map entry c+1, 255 -> black."""
    cmap = voc_colormap(256)
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:182] = cmap[1:183]
    return palette


def ade20k_palette() -> np.ndarray:
    """(256, 3) table for ADE20K labels: label l -> colour-map entry l (0 = other = black)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:151] = voc_colormap(151)
    return palette


PALETTES = {"coco-stuff": coco_stuff_palette, "ade20k": ade20k_palette}


def class_names(dataset: str) -> tuple[str, ...]:
    """Names indexed by stored label value (COCO-Stuff: 0..181; ADE20K: 0 = 'other', 1..150)."""
    if dataset == "coco-stuff":
        return COCO_STUFF_CLASSES
    if dataset == "ade20k":
        return ("other",) + ADE20K_CLASSES
    raise ValueError(f"unknown segmentation dataset {dataset!r}")


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) integer labels -> (H, W, 3) uint8 colour mask via a (256, 3) palette."""
    labels = np.asarray(labels)
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= len(palette):
        raise ValueError(f"labels out of palette range 0..{len(palette) - 1}")
    return palette[labels]


# The official PITI COCO test masks colour some unlabeled areas with colour-map entry 183
# (label "182", one past the last class) instead of black; decoding accepts both.
COCO_UNLABELED_ALIASES = (183,)


def decode_color_mask(rgb: np.ndarray, dataset: str) -> np.ndarray:
    """(H, W, 3) colour mask -> (H, W) uint8 stored ids; ValueError on a colour not in the palette.

    COCO-Stuff: black and colour-map entry 183 decode to 255 (unlabeled).  ADE20K: black is 0.
    """
    palette = PALETTES[dataset]()
    n_classes = 182 if dataset == "coco-stuff" else 151
    keys = palette[:n_classes].astype(np.int64) @ np.array([65536, 256, 1])
    values = np.arange(n_classes, dtype=np.int64)
    if dataset == "coco-stuff":
        extra = [0] + [int(voc_colormap(256)[i].astype(np.int64) @ np.array([65536, 256, 1])) for i in COCO_UNLABELED_ALIASES]
        keys = np.concatenate([keys, extra])
        values = np.concatenate([values, [COCO_UNLABELED] * len(extra)])
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    codes = np.asarray(rgb)[..., :3].astype(np.int64) @ np.array([65536, 256, 1])
    pos = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
    bad = keys[pos] != codes
    if bad.any():
        r, g, b = np.asarray(rgb)[bad][0][:3]
        raise ValueError(f"colour ({r}, {g}, {b}) is not in the {dataset} palette")
    return values[pos].astype(np.uint8)
