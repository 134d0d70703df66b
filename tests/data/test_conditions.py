import numpy as np
from scipy import ndimage

from piti_cli.data import conditions as cond


def test_jet_lut_endpoints_and_middle():
    lut = cond.jet_lut(256)
    np.testing.assert_allclose(lut[0], [0, 0, 0.5])
    np.testing.assert_allclose(lut[-1], [0.5, 0, 0])
    assert lut[128, 1] == 1.0  # green saturates in the middle


def test_depth_to_rgb_invalid_black_and_near_is_blue():
    depth = np.tile(np.linspace(0.6, 40, 64, dtype=np.float32), (64, 1))
    valid = np.ones_like(depth, np.uint8)
    valid[:, :4] = 0
    rgb = cond.depth_to_rgb(depth, valid)
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    assert (rgb[:, :4] == 0).all()
    near, far = rgb[0, 5].astype(int), rgb[0, -1].astype(int)
    assert near[2] > near[0]  # near: blue end of jet
    assert far[0] > far[2]  # far: red end
    # closed form for one pixel: index floor(log(d)/log(max+1.01) * 256)
    max_d = min(300.0, float(np.percentile(depth, 99)))
    d = float(np.clip(depth[0, 30], 0.5, max_d))
    idx = int(np.floor(np.log(d) / np.log(max_d + 1.01) * 256))
    np.testing.assert_array_equal(rgb[0, 30], (cond.jet_lut()[idx] * 255).astype(np.uint8))


def test_normal_to_rgb_closed_form():
    n = np.zeros((4, 4, 3), np.float32)
    n[..., 0] = -1.0  # pointing left everywhere...
    n[0, 0] = 0.0  # ...but one pixel without data
    rgb = cond.normal_to_rgb(n)
    # min is -1: (n + 1) / 2 -> x 0, y/z 0.5; the no-data pixel becomes black
    np.testing.assert_array_equal(rgb[1, 1], [0, 127, 127])
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 0])


def test_sketch_distance_matches_taxicab_transform():
    rng = np.random.default_rng(0)
    edges = (rng.random((40, 50)) > 0.97).astype(np.uint8)
    ref = ndimage.distance_transform_cdt(edges == 0, metric="taxicab")
    np.testing.assert_array_equal(cond.sketch_distance(edges), np.clip(ref, 0, 255))
    c = cond.sketch_condition(edges)
    assert c.shape == (1, 40, 50) and c.min() >= -1 and c.max() <= 1
    assert (c[0][edges > 0] == -1).all()


def test_mask_and_depth_condition_shapes():
    pal = np.zeros((256, 3), np.uint8)
    pal[3] = (255, 0, 0)
    m = cond.mask_condition(np.full((8, 8), 3), pal)
    assert m.shape == (3, 8, 8) and (m[0] == 1).all() and (m[1] == -1).all()
    d = cond.depth_condition(np.ones((8, 8)) * 5, np.ones((8, 8)), np.dstack([np.zeros((8, 8))] * 2 + [np.ones((8, 8))]))
    assert d.shape == (6, 8, 8) and d.dtype == np.float32
