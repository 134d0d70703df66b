"""Small datasets in the official folder layouts, built from real inputs (skimage photos,
the reference COCO masks and sketches), with a broken file and an unmatched file in each."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from piti_cli.data.palettes import decode_color_mask

PHOTOS = (skdata.astronaut, skdata.coffee, skdata.chelsea)


def photo(i: int, size=(120, 96)) -> np.ndarray:
    img = PHOTOS[i % 3]()
    return np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC))


def broken_jpeg(path: Path) -> None:
    buf = path.with_suffix(".tmp")
    Image.fromarray(photo(0)).save(buf, format="JPEG")
    path.write_bytes(buf.read_bytes()[:200])  # truncated: header only
    buf.unlink()


@pytest.fixture
def coco_root(tmp_path, reference_dir) -> Path:
    """COCO-Stuff layout: 4 good pairs (real masks as ids), 1 broken jpg, 1 image without labels."""
    root = tmp_path / "cocostuff"
    for split in ("train2017", "val2017"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
    masks = sorted((reference_dir / "piti_test_inputs" / "mask").glob("*.png"))
    for i, m in enumerate(masks):
        ids = decode_color_mask(np.asarray(Image.open(m).convert("RGB")), "coco-stuff")
        ids = np.asarray(Image.fromarray(ids).resize((120, 96), Image.NEAREST))
        Image.fromarray(photo(i)).save(root / "images/train2017" / f"{i:012d}.jpg", quality=90)
        Image.fromarray(ids, mode="L").save(root / "annotations/train2017" / f"{i:012d}.png")
    broken_jpeg(root / "images/train2017" / "000000000099.jpg")
    Image.fromarray(np.zeros((96, 120), np.uint8), mode="L").save(root / "annotations/train2017/000000000099.png")
    Image.fromarray(photo(1)).save(root / "images/train2017" / "000000000050.jpg")  # no labels
    Image.fromarray(photo(2)).save(root / "images/val2017" / "000000000007.jpg")
    Image.fromarray(np.full((96, 120), 255, np.uint8), mode="L").save(root / "annotations/val2017/000000000007.png")
    return root


def write_diode_view(scan: Path, name: str, i: int, h=48, w=64) -> None:
    scan.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(i)
    Image.fromarray(photo(i, (w, h))).save(scan / f"{name}.png")
    depth = np.linspace(1, 30, h * w, dtype=np.float32).reshape(h, w, 1) + rng.random((h, w, 1), np.float32)
    mask = np.ones((h, w), np.float32)
    mask[:, :5] = 0
    normal = np.zeros((h, w, 3), np.float32)
    normal[..., 2] = -1.0
    normal[:, :5] = 0.0
    np.save(scan / f"{name}_depth.npy", depth)
    np.save(scan / f"{name}_depth_mask.npy", mask)
    np.save(scan / f"{name}_normal.npy", normal)


@pytest.fixture
def diode_root(tmp_path) -> Path:
    root = tmp_path / "diode"
    write_diode_view(root / "val/indoors/scene_00019/scan_00183", "00019_00183_indoors_000_010", 0)
    write_diode_view(root / "val/outdoor/scene_00022/scan_00193", "00022_00193_outdoor_000_000", 1)
    write_diode_view(root / "val/outdoor/scene_00022/scan_00193", "00022_00193_outdoor_000_010", 2)
    (root / "val/outdoor/scene_00022/scan_00193/00022_00193_outdoor_000_010_normal.npy").unlink()
    return root


@pytest.fixture
def make_photo():
    return photo
