"""Generators of broken inputs, one function per kind of file: each takes a folder and a case
name and writes the file there, returning its path. Nothing here is a fixture file: every
broken byte is made by the test run."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 50000, height: int = 50000) -> bytes:
    """A PNG whose header claims width × height RGB pixels (and holds none)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _png_bytes(picture: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    return buf.getvalue()


IMAGE_CASES = ("random-bytes", "truncated", "empty", "bomb-header", "text")


def bad_image(folder: Path, case: str, name: str = "bad") -> Path:
    rng = np.random.default_rng(len(case))
    good = _png_bytes(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    data = {
        "random-bytes": rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "bomb-header": bomb_png(),
        "text": b"this is not a picture\n",
    }[case]
    path = folder / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


LABEL_CASES = ("id-out-of-range", "colour-picture", "random-bytes", "float-tiff")


def bad_label_map(folder: Path, case: str, name: str = "bad") -> Path:
    path = folder / f"{name}.{'tif' if case == 'float-tiff' else 'png'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if case == "id-out-of-range":
        Image.fromarray(np.full((16, 16), 200, np.uint8)).save(path)
    elif case == "colour-picture":
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
    elif case == "random-bytes":
        path.write_bytes(np.random.default_rng(2).integers(0, 256, 500, dtype=np.uint8).tobytes())
    else:
        Image.fromarray(np.full((16, 16), 0.5, np.float32), mode="F").save(path)
    if case == "float-tiff":  # prep masks reads .png only: keep the suffix it lists
        path = path.rename(path.with_suffix(".png"))
    return path


DEPTH_CASES = ("all-nan-depth", "inf-normal", "shape-mismatch", "pickled-object", "random-bytes")


def diode_view(folder: Path, name: str, case: str | None = None, size: int = 24) -> Path:
    """A DIODE view folder/name{.png,_depth.npy,_depth_mask.npy,_normal.npy}; `case` breaks it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    depth = rng.uniform(0.5, 20.0, (size, size, 1)).astype(np.float32)
    mask = np.ones((size, size), np.float32)
    normal = rng.normal(size=(size, size, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    if case == "all-nan-depth":
        depth[:] = np.nan
    elif case == "inf-normal":
        normal[3, 4, 0] = np.inf
    elif case == "shape-mismatch":
        mask = mask[:-2]
    np.save(folder / f"{name}_depth.npy", depth)
    np.save(folder / f"{name}_depth_mask.npy", mask)
    np.save(folder / f"{name}_normal.npy", normal)
    if case == "pickled-object":
        np.save(folder / f"{name}_depth.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "random-bytes":
        (folder / f"{name}_normal.npy").write_bytes(rng.integers(0, 256, 400, dtype=np.uint8).tobytes())
    return folder / name


CHECKPOINT_CASES = (
    "random-bytes.pt", "empty.pt", "zip-without-tensors.pt", "truncated.pt", "pickle-runs-code.pt",
    "list.pt", "no-tensors.pt", "wrapper-without-config.pt", "wrapper-bad-config.pt",
    "nan-tensor.safetensors", "inf-tensor.pt", "bad-config-json.safetensors",
    "config-missing-fields.safetensors", "random-bytes.safetensors",
)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def bad_checkpoint(folder: Path, case: str, good: Path) -> Path:
    """A broken checkpoint; `good` is a real piti `.pt` to damage."""
    import torch

    from piti_cli.checkpoints.io import PITI_FORMAT, read_checkpoint, save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / case
    ck = read_checkpoint(good)
    state = dict(ck.state_dict)
    from piti_cli.models.config import PRESETS

    config = ck.config or PRESETS["piti-base-mask-tiny"]
    if case.startswith("random-bytes"):
        path.write_bytes(np.random.default_rng(4).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif case == "empty.pt":
        path.write_bytes(b"")
    elif case == "zip-without-tensors.pt":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/readme.txt", "no tensors here")
    elif case == "truncated.pt":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif case == "pickle-runs-code.pt":
        path.write_bytes(pickle.dumps({"w": _RunsCode()}, protocol=2))
    elif case == "list.pt":
        torch.save([1, 2, 3], path)
    elif case == "no-tensors.pt":
        torch.save({"step": 3, "note": "hello"}, path)
    elif case == "wrapper-without-config.pt":
        torch.save({"format": PITI_FORMAT, "version": 1, "state_dict": state}, path)
    elif case == "wrapper-bad-config.pt":
        torch.save({"format": PITI_FORMAT, "version": 1, "config": {"name": "x"}, "state_dict": state}, path)
    elif case in ("nan-tensor.safetensors", "inf-tensor.pt"):
        name = sorted(k for k, v in state.items() if v.is_floating_point())[3]
        state[name] = state[name].clone()
        state[name].view(-1)[0] = float("nan") if "nan" in case else float("inf")
        save_checkpoint(path, state, config)
    elif case == "bad-config-json.safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"piti_config": "{not json"})
    elif case == "config-missing-fields.safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path),
                  metadata={"piti_config": json.dumps({"name": config.name})})
    else:
        raise ValueError(case)
    return path


PACK_CASES = ("missing-dataset", "count-beyond-rows", "bad-config-attr", "random-bytes", "incomplete",
              "wrong-row-shape")


def bad_pack(folder: Path, case: str, good: Path) -> Path:
    """A copy of the finished pack `good`, damaged as `case` says."""
    import shutil

    import h5py

    path = folder / f"{case}.h5"
    folder.mkdir(parents=True, exist_ok=True)
    if case == "random-bytes":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(5).integers(0, 256, 2000, dtype=np.uint8).tobytes())
        return path
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        if case == "missing-dataset":
            del f["images"]
        elif case == "count-beyond-rows":
            f.attrs["count"] = int(f.attrs["count"]) + 5
        elif case == "bad-config-attr":
            f.attrs["config"] = "{broken"
        elif case == "incomplete":
            f.attrs["complete"] = False
        elif case == "wrong-row-shape":
            data = f["conditions/mask"][()]
            del f["conditions/mask"]
            f["conditions/mask"] = data[:, :128]
    return path


def write_mask_pack(path: Path, rows: int = 10) -> Path:
    """A small finished mask pack made by `piti prep pack generic --condition mask`."""
    from piti_cli.data_prep.pack import pack_split
    from piti_cli.data.palettes import PALETTES

    src = path.parent / "pack_src"
    rng = np.random.default_rng(6)
    palette = PALETTES["coco-stuff"]()
    for i in range(rows):
        (src / "img").mkdir(parents=True, exist_ok=True)
        (src / "cond").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(src / "img" / f"{i:02d}.png")
        labels = rng.integers(0, 20, (32, 32))
        Image.fromarray(palette[labels].astype(np.uint8)).save(src / "cond" / f"{i:02d}.png")
    pack_split("generic", src / "img", path, split="all", condition="mask", conditions_dir=src / "cond", workers=1)
    return path
