"""`piti prep degrade`: BSR-degrade a folder of pictures into 64-px PNGs (the degradation
itself, shared with upsampler training, is `piti_cli.data.degrade`)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from piti_cli.data.degrade import degrade_bsr
from piti_cli.data.images import list_images, read_image, resize_bicubic, save_png
from piti_cli.errors import InputError


def sample_rng(seed: int, key: str) -> np.random.Generator:
    """Generator for one file: depends on the run seed and the file's relative path only."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def degrade_folder(
    src, out, *, seed: int = 0, sf: int = 4, l0_mode: str = "correct", overwrite: bool = False,
    strict: bool = False, progress=None,
) -> dict:
    """Degrade every image under `src` (squash-resized to 256 first) into 64x64 PNGs under `out`.

    Each file gets its own generator from (seed, relative path), so outputs do not depend on
    the order or on resuming.  Returns ``{"written", "skipped", "failed": [(path, why)]}``.
    """
    if int(sf) < 1:
        raise InputError(f"--sf {sf}: the scale factor must be at least 1")
    src, out = Path(src), Path(out)
    files = [src] if src.is_file() else list_images(src)
    if not files:
        raise InputError(f"{src}: no images found")
    written = skipped = 0
    failed: list[tuple[str, str]] = []
    for i, path in enumerate(files):
        rel = path.name if src.is_file() else str(path.relative_to(src))
        target = out / Path(rel).with_suffix(".png")
        if target.exists() and not overwrite:
            skipped += 1
        else:
            try:
                img = resize_bicubic(read_image(path, "RGB"), 64 * sf)
            except InputError as err:
                if strict:
                    raise
                failed.append((str(path), str(err)))
            else:
                save_png(degrade_bsr(img, sample_rng(seed, rel), sf=sf, l0_mode=l0_mode), target)
                written += 1
        if progress:
            progress(i + 1, len(files))
    return {"written": written, "skipped": skipped, "failed": failed}
