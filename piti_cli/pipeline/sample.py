"""`piti sample` as a core function: conditions in, PNGs and a JSON sidecar out."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from piti_cli.errors import InputError
from piti_cli.io_utils import atomic_path, atomic_write_text
from piti_cli.pipeline.cascade import (
    BASE_DEFAULTS,
    UPSAMPLE_DEFAULTS,
    StageSettings,
    prepare,
    sample_cascade,
    stage_process,
)
from piti_cli.pipeline.inputs import Condition, fit_to_encoder, load_conditions
from piti_cli.runtime import resolve_device

SIDECAR = "piti_sample.json"
# Registry ids of the small models piti ships (used when no checkpoint is given).
DEFAULT_BASE = "piti-demo-base"
DEFAULT_UPSAMPLER = "piti-demo-upsample"


@dataclass
class SampleJob:
    cond: str
    out: Path
    base: str | None = None  # path or registry id
    upsampler: str | None = None
    base_only: bool = False
    base_settings: StageSettings = BASE_DEFAULTS
    upsample_settings: StageSettings = UPSAMPLE_DEFAULTS
    num_samples: int = 1
    batch_size: int = 4
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    save_low_res: bool = False
    grid: bool = False
    limit: int | None = None
    weights_dir: str | None = None


@dataclass
class SampleResult:
    images: list[Path] = field(default_factory=list)
    sidecar: Path | None = None
    seconds: float = 0.0


def _load(spec: str, weights_dir, role: str):
    from piti_cli.checkpoints.convert import load_model
    from piti_cli.checkpoints.registry import resolve, sha256_file
    from piti_cli.models.piti import PitiModel

    path = resolve(spec, weights_dir)
    model, config = load_model(path)
    if not isinstance(model, PitiModel):
        raise InputError(f"{path}: is a GLIDE text-to-image model; finetune it into a PITI {role} first (`piti finetune`)")
    if config.is_upsampler != (role == "upsampler"):
        raise InputError(f"{path}: is a {'upsampler' if config.is_upsampler else 'base model'}, expected the {role}")
    return model, {"path": str(path), "sha256": sha256_file(path), "preset": config.name}


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] (3, H, W) → uint8 (H, W, 3), rounding as torchvision's save_image does."""
    arr = ((x.float().clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _grid(images: list[np.ndarray], columns: int) -> np.ndarray:
    h, w, _ = images[0].shape
    rows = (len(images) + columns - 1) // columns
    canvas = np.zeros((rows * h, columns * w, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return canvas


def _check_settings(job: SampleJob) -> None:
    from piti_cli.diffusion.respace import space_timesteps

    for flag, settings in (("--steps", job.base_settings), ("--upsample-steps", job.upsample_settings)):
        try:
            space_timesteps(1000, settings.steps)
        except ValueError as err:
            raise InputError(f"{flag} {settings.steps}: {err}") from None
    if job.num_samples < 1 or job.batch_size < 1:
        raise InputError("--num-samples and --batch-size must be at least 1")


def run_sample(job: SampleJob, progress: Callable[[int, int], None] | None = None) -> SampleResult:
    started = time.monotonic()
    _check_settings(job)
    device = resolve_device(job.device)
    base, base_info = _load(job.base or DEFAULT_BASE, job.weights_dir, "base model")
    kind = base.config.input_kind
    upsampler, up_info = (None, None)
    if not job.base_only:
        upsampler, up_info = _load(job.upsampler or DEFAULT_UPSAMPLER, job.weights_dir, "upsampler")
        if upsampler.config.input_kind != kind:
            raise InputError(f"{up_info['path']}: upsampler takes {upsampler.config.input_kind}, base takes {kind}")
    # Every input is read and checked before any sampling: bad input writes nothing.
    conditions = load_conditions(job.cond, kind, job.limit)
    size = base.config.encoder.input_size
    work = [(c, k) for c in conditions for k in range(job.num_samples)]

    base = prepare(base, device, job.precision)
    upsampler = prepare(upsampler, device, job.precision) if upsampler else None
    steps_per_batch = len(stage_process(base, job.base_settings).timestep_map) + (
        len(stage_process(upsampler, job.upsample_settings).timestep_map) if upsampler else 0)
    batches = [work[i:i + job.batch_size] for i in range(0, len(work), job.batch_size)]
    total = steps_per_batch * len(batches)

    result = SampleResult()
    finals: list[np.ndarray] = []
    job.out.mkdir(parents=True, exist_ok=True)
    for b, batch in enumerate(batches):
        cond = torch.from_numpy(np.stack([fit_to_encoder(c.array, size) for c, _ in batch])).to(device)
        # One generator per batch, seeded from (seed, batch index): reruns are reproducible.
        generator = torch.Generator(device).manual_seed(job.seed * 1_000_003 + b)
        offset = b * steps_per_batch
        low, high = sample_cascade(
            base, upsampler, cond, generator, job.base_settings, job.upsample_settings,
            None if progress is None else (lambda done, _t, o=offset: progress(o + done, total)),
        )
        for i, (c, k) in enumerate(batch):
            name = c.name if job.num_samples == 1 else f"{c.name}_{k}"
            final = _to_uint8((high if high is not None else low)[i])
            finals.append(final)
            path = job.out / f"{name}.png"
            _save_png(final, path)
            result.images.append(path)
            if job.save_low_res and high is not None:
                _save_png(_to_uint8(low[i]), job.out / "64" / f"{name}.png")
    if job.grid and finals:
        _save_png(_grid(finals, max(job.num_samples, min(len(finals), 8))), job.out / "grid.png")
    result.seconds = time.monotonic() - started
    result.sidecar = job.out / SIDECAR
    atomic_write_text(result.sidecar, json.dumps(_sidecar(job, base_info, up_info, conditions, device, result), indent=2))
    return result


def _sidecar(job, base_info, up_info, conditions: list[Condition], device, result) -> dict:
    from piti_cli import __version__

    settings = {k: v for k, v in asdict(job).items() if k not in ("base_settings", "upsample_settings", "out")}
    return {
        "piti_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "settings": settings,
        "base": {**base_info, **job.base_settings.as_dict()},
        "upsampler": None if up_info is None else {**up_info, **job.upsample_settings.as_dict()},
        "inputs": [c.name for c in conditions],
        "outputs": [p.name for p in result.images],
        "seconds": round(result.seconds, 2),
    }
