import numpy as np
import pytest
from PIL import Image

from piti_cli.errors import InputError
from piti_cli.metrics.images import clean_resize, clip_preprocess, open_source


def test_clean_resize_matches_clean_fid_resizer():
    from cleanfid.resize import build_resizer  # independent reference implementation

    img = np.random.default_rng(0).integers(0, 256, size=(256, 200, 3), dtype=np.uint8)
    ref = build_resizer("clean")(img).transpose(2, 0, 1)
    np.testing.assert_allclose(clean_resize(img), ref, rtol=0, atol=1e-4)


def test_clip_preprocess_matches_torchvision_pipeline():
    import torchvision.transforms as T

    img = np.random.default_rng(1).integers(0, 256, size=(180, 300, 3), dtype=np.uint8)
    pipeline = T.Compose([
        T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
        T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    ref = pipeline(Image.fromarray(img)).numpy()
    np.testing.assert_allclose(clip_preprocess(img), ref, atol=1e-5)


def test_folder_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty: no images found"):
        open_source(empty)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    src = open_source(tmp_path / "bad")
    with pytest.raises(InputError, match=r"x\.png: unreadable image") as err:
        src.read(0)
    assert "\n" not in str(err.value)


def test_hdf5_pack_images(tmp_path):
    import h5py

    imgs = np.random.default_rng(2).integers(0, 256, size=(3, 256, 256, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "val.h5", "w") as f:
        f.create_dataset("images", data=imgs)
        f.attrs["count"] = 3
        f.attrs["complete"] = True
    src = open_source(tmp_path / "val.h5")
    assert len(src) == 3 and np.array_equal(src.read(2), imgs[2])
    with h5py.File(tmp_path / "nope.h5", "w") as f:
        f.create_dataset("labels", data=np.zeros(3))
    with pytest.raises(InputError, match="no 'images' dataset"):
        open_source(tmp_path / "nope.h5")
