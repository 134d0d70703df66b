"""Pictures follow PIL's rules exactly, as the official loaders do (PIL itself is the reference)."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from piti_cli.data import images
from piti_cli.data.kinds import KINDS
from piti_cli.errors import InputError, PitiError
from piti_cli.pipeline.inputs import load_conditions

ODD_SIZES = [(429, 640), (240, 320), (280, 300), (7, 13), (257, 255)]


def pil(picture: np.ndarray, size, resample) -> np.ndarray:
    h, w = size
    return np.asarray(Image.fromarray(picture).resize((w, h), resample))


@pytest.mark.parametrize("shape", ODD_SIZES)
def test_nearest_equals_pil_for_every_dtype(shape):
    rng = np.random.default_rng(shape[0])
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert np.array_equal(images.resize_nearest(rgb, 256), pil(rgb, (256, 256), Image.NEAREST))
    labels = rng.integers(0, 183, shape).astype(np.int64)
    expect = np.asarray(Image.fromarray(labels.astype(np.int32), "I").resize((64, 48), Image.NEAREST))
    got = images.resize_nearest(labels, (48, 64))
    assert got.dtype == np.int64 and np.array_equal(got, expect)
    floats = rng.standard_normal(shape).astype(np.float32)
    expect = np.asarray(Image.fromarray(floats, "F").resize((256, 256), Image.NEAREST))
    assert np.array_equal(images.resize_nearest(floats, 256), expect)


def test_opencv_nearest_would_differ():
    """The bug this module fixes: cv2.INTER_NEAREST samples another grid than PIL."""
    import cv2

    rgb = np.random.default_rng(0).integers(0, 256, (429, 640, 3), dtype=np.uint8)
    assert not np.array_equal(cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_NEAREST), images.resize_nearest(rgb, 256))


def test_bicubic_equals_pil_on_uint8():
    rgb = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = images.resize_bicubic(rgb, 64)
    assert out.dtype == np.uint8 and np.array_equal(out, pil(rgb, (64, 64), Image.BICUBIC))


def test_unit_range_round_trip_and_rounding():
    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    unit = images.to_unit(x)
    assert unit.shape == (1, 16, 16) and np.allclose(unit[0], x / 127.5 - 1, atol=1e-6)
    back = images.to_uint8(np.repeat(unit, 3, axis=0))
    assert np.array_equal(back[..., 0], x)
    # torchvision's save_image rule: floor(255 * (x + 1) / 2 + 0.5), clamped.
    vals = torch.tensor([-2.0, -1.0, -0.999, 0.0, 0.5, 1.0, 3.0]).reshape(1, 1, 7).repeat(3, 1, 1)
    expect = np.floor(np.clip((vals.numpy()[0, 0] + 1) / 2, 0, 1) * 255 + 0.5)
    assert np.array_equal(images.to_uint8(vals)[0, :, 0], expect)


def test_non_finite_values_never_become_pictures():
    x = torch.zeros(3, 4, 4)
    x[0, 1, 1] = float("nan")
    with pytest.raises(PitiError, match="non-finite"):
        images.to_uint8(x)


def test_png_text_chunks_round_trip(tmp_path):
    path = images.save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png", {"seed": "3", "note": "ε ünïcode"})
    assert images.png_text(path) == {"seed": "3", "note": "ε ünïcode"}


def test_decompression_bomb_is_one_clear_error(tmp_path):
    path = tmp_path / "bomb.png"
    big = Image.new("1", (1, 1))
    big.save(path)
    data = bytearray(path.read_bytes())
    # Rewrite the IHDR size to 50000×50000 (PIL refuses before decoding), fixing the CRC.
    import struct
    import zlib

    data[16:24] = struct.pack(">II", 50000, 50000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="bomb.png: picture too large"):
        images.read_image(path)


# --- every input kind, at odd and non-square sizes, as PIL NEAREST resizes it ----------------

def test_mask_files_resize_as_pil(tmp_path, reference_dir):
    src = Image.open(reference_dir / "piti_test_inputs" / "mask" / "000000070229.png").convert("RGB")
    for h, w in ODD_SIZES[:3]:
        big = src.resize((w, h), Image.NEAREST)  # palette colours only
        big.save(tmp_path / f"m{h}.png")
        (cond,) = load_conditions(tmp_path / f"m{h}.png", "mask")
        expect = np.asarray(big.resize((256, 256), Image.NEAREST)).astype(np.float32) / 127.5 - 1
        assert np.array_equal(cond.read(), expect.transpose(2, 0, 1))


def test_sketch_files_resize_as_pil_then_distance(tmp_path, reference_dir):
    src = Image.open(reference_dir / "piti_test_inputs" / "sketch" / "000000038825.png").convert("L")
    for h, w in ((240, 320), (257, 255)):
        big = src.resize((w, h), Image.NEAREST)
        big.save(tmp_path / f"s{h}.png")
        (cond,) = load_conditions(tmp_path / f"s{h}.png", "sketch")
        edges = np.asarray(big.resize((256, 256), Image.NEAREST)) > 127
        dist = np.minimum(ndimage.distance_transform_cdt(~edges, metric="taxicab"), 255)
        assert np.array_equal(np.rint((cond.read()[0] + 1) * 127.5), dist)


def test_depth_normal_files_resize_as_pil(tmp_path):
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:280, 0:300]
    smooth = np.stack([(x + y * k) % 256 for k in range(6)], axis=-1).astype(np.uint8)
    np.save(tmp_path / "dn.npy", smooth)
    (cond,) = load_conditions(tmp_path / "dn.npy", "depth-normal")
    halves = [pil(np.ascontiguousarray(smooth[..., i:i + 3]), (256, 256), Image.NEAREST) for i in (0, 3)]
    expect = np.concatenate(halves, axis=-1).astype(np.float32) / 127.5 - 1
    assert np.array_equal(cond.read(), expect.transpose(2, 0, 1))
    floats = rng.uniform(-1, 1, (6, 7, 13)).astype(np.float32)
    np.save(tmp_path / "f.npy", floats)
    (cond,) = load_conditions(tmp_path / "f.npy", "depth-normal")
    expect = np.stack([np.asarray(Image.fromarray(c, "F").resize((256, 256), Image.NEAREST)) for c in floats])
    assert np.array_equal(cond.read(), expect)


def test_every_kind_has_a_reader_for_its_channels(tmp_path):
    assert {k: v.channels for k, v in KINDS.items()} == {"mask": 3, "sketch": 1, "depth-normal": 6}


def test_fit_condition_is_pil_nearest_per_channel_for_arrays_and_tensors():
    from piti_cli.data.images import fit_condition

    rng = np.random.default_rng(0)
    cond = rng.uniform(-1, 1, (3, 256, 256)).astype(np.float32)
    want = np.stack([np.asarray(Image.fromarray(c, mode="F").resize((32, 32), Image.NEAREST)) for c in cond])
    assert np.array_equal(fit_condition(cond, 32), want)
    batch = torch.from_numpy(np.stack([cond, -cond])).to(torch.bfloat16)
    out = fit_condition(batch, 32)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3, 32, 32)
    source = batch[1].float().numpy()  # nearest picks values: the bf16 ones, exactly
    picked = np.stack([np.asarray(Image.fromarray(c, mode="F").resize((32, 32), Image.NEAREST)) for c in source])
    assert np.array_equal(out[1].float().numpy(), picked)
    assert fit_condition(cond, 256) is cond  # already fits: untouched
