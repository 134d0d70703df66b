import numpy as np
from PIL import Image

from piti_cli.data_prep.depth import convert_depth, list_diode, load_diode_256
from piti_cli.data.conditions import depth_to_rgb


def test_convert_depth_writes_official_pictures(diode_root, tmp_path):
    rep = convert_depth(diode_root, tmp_path / "out")
    assert rep.written == 2 and len(rep.failed) == 1 and "missing" in rep.failed[0][1]
    base = tmp_path / "out/val/indoors/scene_00019/scan_00183/00019_00183_indoors_000_010"
    img = np.asarray(Image.open(f"{base}.png"))
    dep = np.asarray(Image.open(f"{base}_depth.png"))
    nor = np.asarray(Image.open(f"{base}_normal.png"))
    assert img.shape == dep.shape == nor.shape == (256, 256, 3)
    # invalid columns (first 5 of 64 -> first 20 of 256) are black in both pictures
    assert (dep[:, :18] == 0).all() and (nor[:, :18] == 0).all()
    # normal (0, 0, -1) with min -1 -> (0.5, 0.5, 0) -> 127, 127, 0
    np.testing.assert_array_equal(nor[100, 100], [127, 127, 0])
    # depth grows along rows: first valid pixels blue-ish, last red-ish
    assert dep[0, 30, 2] > dep[0, 30, 0] and dep[-1, -1, 0] > dep[-1, -1, 2]
    assert convert_depth(diode_root, tmp_path / "out").skipped_existing == 2


def test_load_diode_nearest_resize(diode_root):
    stem = list_diode(diode_root)[0]
    v = load_diode_256(stem)
    raw = np.load(f"{stem}_depth.npy").squeeze()
    assert v["depth"].shape == (256, 256) and v["original_size"] == (48, 64)
    assert set(np.unique(v["depth"])) <= set(np.unique(raw))  # nearest: no new values
    np.testing.assert_array_equal(depth_to_rgb(v["depth"], v["depth_valid"])[:, :18], 0)
