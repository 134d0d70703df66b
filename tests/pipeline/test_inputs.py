import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from piti_cli.errors import InputError
from piti_cli.pipeline.inputs import load_conditions


def test_real_masks_load_as_unit_range_colour(reference_dir):
    conds = load_conditions(reference_dir / "piti_test_inputs" / "mask", "mask")
    assert [c.name for c in conds] == sorted(p.stem for p in (reference_dir / "piti_test_inputs" / "mask").glob("*.png"))
    for c in conds:
        raw = np.asarray(Image.open(reference_dir / "piti_test_inputs" / "mask" / f"{c.name}.png").convert("RGB"))
        array = c.read()
        assert array.shape == (3, 256, 256)
        assert np.allclose(array, raw.transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)


def test_real_sketches_become_l1_distance_maps(reference_dir):
    folder = reference_dir / "piti_test_inputs" / "sketch"
    for c in load_conditions(folder, "sketch"):
        raw = np.asarray(Image.open(folder / f"{c.name}.png").convert("L")) > 127
        # Independent reference: exact taxicab distance to the nearest edge pixel, capped at 255.
        dist = np.minimum(ndimage.distance_transform_cdt(~raw, metric="taxicab"), 255)
        array = c.read()
        assert array.shape == (1, 256, 256)
        assert np.allclose((array[0] + 1) * 127.5, dist, atol=1e-3)


def test_colour_outside_the_palette_is_one_clear_error(tmp_path):
    img = np.zeros((32, 32, 3), np.uint8)
    img[0, 0] = (1, 2, 3)
    Image.fromarray(img).save(tmp_path / "bad.png")
    with pytest.raises(InputError, match=r"bad.png: colour \(1, 2, 3\) is not in the coco-stuff palette"):
        load_conditions(tmp_path / "bad.png", "mask")


def test_wrong_channels_and_unreadable_files(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match="colour.png: a sketch must be a grey"):
        load_conditions(tmp_path / "colour.png", "sketch")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "grey.png")
    with pytest.raises(InputError, match="grey.png: a mask must be an RGB colour mask"):
        load_conditions(tmp_path / "grey.png", "mask")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="junk.png: unreadable image"):
        load_conditions(tmp_path / "junk.png", "sketch")
    np.save(tmp_path / "dn.npy", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match=r"dn.npy: depth-normal input must be"):
        load_conditions(tmp_path / "dn.npy", "depth-normal")
    with pytest.raises(InputError, match="no such file"):
        load_conditions(tmp_path / "missing", "mask")


def test_a_condition_changed_after_its_check_is_refused_not_sampled(tmp_path):
    """The run records each condition's digest at check time; reading it again when its batch
    comes must give those bytes, or say the file changed (a different picture would otherwise
    be filed under the recorded digest)."""
    from piti_cli.data.scenes import MASK_COLOURS
    path = tmp_path / "m.png"
    Image.fromarray(np.broadcast_to(MASK_COLOURS[0], (64, 64, 3)).copy()).save(path)
    (cond,) = load_conditions(path, "mask")
    first = cond.read()
    assert np.array_equal(first, cond.read())
    Image.fromarray(np.broadcast_to(MASK_COLOURS[1], (64, 64, 3)).copy()).save(path)
    with pytest.raises(InputError, match=r"m\.png: changed since this run checked it"):
        cond.read()
