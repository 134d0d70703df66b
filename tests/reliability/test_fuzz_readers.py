"""Property tests: random and mutated bytes fed to the picture, checkpoint and pack readers.
Whatever the bytes, a reader returns data or raises piti's own error (`PitiError`); nothing
else comes out (no IndexError from an unpickler, no KeyError from a damaged pack)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from piti_cli.errors import PitiError

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    return bytes(buf[:cut] if cut else buf)


# positions biased to the first 4 KiB, where headers, pickles and HDF5 metadata live
POSITION = st.one_of(st.integers(0, 4095), st.integers(0, 1 << 30))
EDITS = st.lists(st.tuples(POSITION, st.integers(0, 255)), min_size=1, max_size=8)
CUT = st.one_of(st.none(), st.integers(1, 1 << 20))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small valid files of each kind, and a scratch folder for the mutated copies."""
    import torch
    from PIL import Image

    from piti_cli.checkpoints.io import save_checkpoint
    from piti_cli.models.config import PRESETS
    from tests.reliability.bad_files import write_mask_pack

    root = tmp_path_factory.mktemp("fuzz")
    pic = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    out = {}
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        Image.fromarray(pic).save(buf, format=fmt)
        out[fmt] = buf.getvalue()
    state = {"a.weight": torch.randn(4, 3), "b.bias": torch.zeros(5), "steps": torch.tensor([3])}
    for suffix in (".pt", ".safetensors"):
        save_checkpoint(root / f"ck{suffix}", state, PRESETS["piti-base-mask-tiny"])
        out[suffix] = (root / f"ck{suffix}").read_bytes()
    out[".h5"] = write_mask_pack(root / "pack" / "p.h5", rows=2).read_bytes()
    out["dir"] = root
    return out


def _read_image(path):
    from piti_cli.data.images import read_image

    return read_image(path)


def _read_checkpoint(path):
    from piti_cli.checkpoints.io import read_checkpoint

    return read_checkpoint(path)


def _read_pack(path):
    from piti_cli.data.reader import PackedDataset

    ds = PackedDataset(path)
    return [ds.condition_tensor(ds[i]["condition"]) for i in range(len(ds))]


def _only_piti_errors(reader, path, data: bytes):
    path.write_bytes(data)
    try:
        reader(path)
    except PitiError as err:
        assert str(err) and "\n" not in str(err).strip()


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".png", ".jpg", ".pt", ".safetensors", ".h5"]))
def test_random_bytes(files, data, suffix):
    reader = {".png": _read_image, ".jpg": _read_image, ".pt": _read_checkpoint,
              ".safetensors": _read_checkpoint, ".h5": _read_pack}[suffix]
    _only_piti_errors(reader, files["dir"] / f"random{suffix}", data)


@FUZZ
@given(kind=st.sampled_from(["PNG", "JPEG"]), edits=EDITS, cut=CUT)
def test_mutated_pictures(files, kind, edits, cut):
    _only_piti_errors(_read_image, files["dir"] / f"m.{kind.lower()}", _mutate(files[kind], edits, cut))


@FUZZ
@given(suffix=st.sampled_from([".pt", ".safetensors"]), edits=EDITS, cut=CUT)
def test_mutated_checkpoints(files, suffix, edits, cut):
    _only_piti_errors(_read_checkpoint, files["dir"] / f"m{suffix}", _mutate(files[suffix], edits, cut))


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_packs(files, edits, cut):
    _only_piti_errors(_read_pack, files["dir"] / "m.h5", _mutate(files[".h5"], edits, cut))
