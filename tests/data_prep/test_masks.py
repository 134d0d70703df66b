import numpy as np
import pytest
from PIL import Image

from piti_cli.data.images import read_image
from piti_cli.data_prep.masks import convert_masks, labels_to_color
from piti_cli.data.palettes import coco_stuff_palette, decode_color_mask, voc_colormap
from piti_cli.errors import InputError


def test_label_png_read_as_raw_indices(tmp_path):
    ids = np.array([[0, 181], [255, 90]], np.uint8)
    Image.fromarray(ids, mode="L").save(tmp_path / "l.png")
    p = Image.fromarray(ids, mode="P")
    p.putpalette([7] * 768)  # a palette that a greyscale conversion would apply
    p.save(tmp_path / "p.png")
    for name in ("l.png", "p.png"):
        np.testing.assert_array_equal(read_image(tmp_path / name, "labels"), ids)


def test_colour_image_is_not_a_label_map(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 128
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(InputError, match="colour image"):
        read_image(tmp_path / "c.png", "labels")


def test_real_masks_reproduced_from_ids(tmp_path, reference_dir):
    alias = voc_colormap(256)[183]
    labels = tmp_path / "labels" / "train2017"
    labels.mkdir(parents=True)
    originals = {}
    for f in sorted((reference_dir / "piti_test_inputs" / "mask").glob("*.png")):
        rgb = np.asarray(Image.open(f).convert("RGB"))
        originals[f.name] = rgb
        Image.fromarray(decode_color_mask(rgb, "coco-stuff"), mode="L").save(labels / f.name)
    res = convert_masks(tmp_path / "labels", tmp_path / "color")
    assert res == {"written": 4, "skipped": 0, "total": 4, "failed": []}
    for name, rgb in originals.items():
        out = np.asarray(Image.open(tmp_path / "color" / "train2017" / name))
        keep = ~np.all(rgb == alias, axis=2)
        np.testing.assert_array_equal(out[keep], rgb[keep])
    assert convert_masks(tmp_path / "labels", tmp_path / "color")["skipped"] == 4  # resumable


def test_ade_and_bad_ids():
    ade = labels_to_color(np.array([[0, 1], [150, 2]]), "ade20k")
    assert tuple(ade[0, 0]) == (0, 0, 0) and tuple(ade[0, 1]) == (128, 0, 0)
    np.testing.assert_array_equal(labels_to_color(np.array([[0, 255]]), "coco-stuff")[0],
                                  coco_stuff_palette()[[0, 255]])
    with pytest.raises(InputError, match="label id 151"):
        labels_to_color(np.array([[151]]), "ade20k")
    with pytest.raises(InputError, match="label id 200"):
        labels_to_color(np.array([[200]]), "coco-stuff")
