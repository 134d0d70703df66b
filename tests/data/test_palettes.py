from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from piti_cli.data import palettes


def _voc_entry(j: int) -> tuple[int, int, int]:
    # Straight from the definition: read j three bits at a time, most significant colour bit first.
    r = g = b = 0
    for k in range(8):
        r |= ((j >> (3 * k)) & 1) << (7 - k)
        g |= ((j >> (3 * k + 1)) & 1) << (7 - k)
        b |= ((j >> (3 * k + 2)) & 1) << (7 - k)
    return r, g, b


def test_voc_colormap_known_entries():
    cmap = palettes.voc_colormap(256)
    assert tuple(cmap[0]) == (0, 0, 0)
    assert tuple(cmap[1]) == (128, 0, 0)
    assert tuple(cmap[2]) == (0, 128, 0)
    assert tuple(cmap[4]) == (0, 0, 128)
    assert tuple(cmap[8]) == (64, 0, 0)
    assert all(tuple(cmap[j]) == _voc_entry(j) for j in range(256))
    assert len({tuple(c) for c in cmap}) == 256


def test_coco_and_ade_palettes():
    coco = palettes.coco_stuff_palette()
    assert tuple(coco[0]) == (128, 0, 0)  # person -> entry 1
    assert tuple(coco[181]) == _voc_entry(182)
    assert tuple(coco[255]) == (0, 0, 0)
    ade = palettes.ade20k_palette()
    assert tuple(ade[0]) == (0, 0, 0) and tuple(ade[1]) == (128, 0, 0)
    assert len(palettes.class_names("coco-stuff")) == 182
    assert palettes.class_names("ade20k")[0] == "other" and len(palettes.class_names("ade20k")) == 151


def _real_masks(reference_dir: Path):
    files = sorted((reference_dir / "piti_test_inputs" / "mask").glob("*.png"))
    assert files
    return [(f, np.asarray(Image.open(f).convert("RGB"))) for f in files]


def test_real_masks_use_only_colour_map_entries(reference_dir):
    entries = {_voc_entry(j) for j in range(256)}
    for f, rgb in _real_masks(reference_dir):
        colours = {tuple(int(v) for v in c) for c in np.unique(rgb.reshape(-1, 3), axis=0)}
        assert colours <= entries, f"{f.name}: {colours - entries}"


def test_real_masks_round_trip(reference_dir):
    coco = palettes.coco_stuff_palette()
    alias = tuple(palettes.voc_colormap(256)[183])
    for f, rgb in _real_masks(reference_dir):
        ids = palettes.decode_color_mask(rgb, "coco-stuff")
        assert ids.dtype == np.uint8 and ((ids <= 181) | (ids == 255)).all()
        again = palettes.colorize(ids, coco)
        is_alias = np.all(rgb == alias, axis=2)
        np.testing.assert_array_equal(again[~is_alias], rgb[~is_alias])
        assert (again[is_alias] == 0).all()
        assert len(np.unique(ids)) >= 3  # several classes, person/tree/bus...


def test_decode_rejects_foreign_colour():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(ValueError, match="not in the coco-stuff palette"):
        palettes.decode_color_mask(rgb, "coco-stuff")
