"""`piti sample` as a core function: conditions in, PNGs and a record of the run out.

A run is a list of pictures, each named by (condition id, sample index), decided before any
sampling (`pipeline.plan`). Each picture's noise comes from its own generators
(`pipeline.noise`), so it does not depend on which batch or process samples it; under
torchrun the pending pictures are split over the ranks (`pipeline.shard`). Network batches
always hold the same number of rows (the last one is padded), so a picture is computed with
the same arithmetic in any split or rerun. Every PNG is written atomically with its settings
in a text chunk (`pipeline.provenance`): a rerun into the same folder keeps the finished
pictures whose settings match and does the rest.
"""

from __future__ import annotations

import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from piti_cli.data.images import condition_picture, fit_condition, make_grid, read_image, resize_nearest, save_png, to_uint8
from piti_cli.distributed import process_group
from piti_cli.pipeline import provenance, shard
from piti_cli.pipeline.cascade import StageSettings, sample_cascade, stage_process, step_cost_ratio
from piti_cli.pipeline.models import DEFAULT_BASE, DEFAULT_UPSAMPLER
from piti_cli.pipeline.noise import RowNoise
from piti_cli.pipeline.plan import SIDECAR, Picture, Plan, SampleJob, jsonable, make_plan, picture_record
from piti_cli.pipeline.progress import SampleProgress
from piti_cli.version import __version__

GRID_ROWS = 16  # grid.png shows the first conditions only: a dataset-size grid is unreadable
__all__ = ["DEFAULT_BASE", "DEFAULT_UPSAMPLER", "SIDECAR", "SampleJob", "SampleResult", "picture_record",
           "run_sample", "sample_batch"]


@dataclass
class SampleResult:
    images: list[Path] = field(default_factory=list)  # written: by all ranks on rank 0, else by this one
    kept: list[Path] = field(default_factory=list)  # already complete from an earlier run
    sidecar: Path | None = None  # set on rank 0
    seconds: float = 0.0
    precision: str = ""
    rank: int = 0
    world_size: int = 1
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unusable inputs (path, why)


def sample_batch(base, upsampler, conditions: list[np.ndarray], keys: list[tuple[str, int]], rows: int, size: int,
                 device: torch.device, seed: int, base_settings: StageSettings, up_settings: StageSettings,
                 progress=None, callback=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One network batch of pictures, as every run samples it: the conditions (C, 256, 256)
    fitted to the encoder's `size` and padded to `rows` (a picture's arithmetic never depends
    on how many share its batch), each picture's noise from its key (condition name, sample
    index). Returns (64-px, final or None) for the real rows only; `progress(done, total)`
    counts the steps of both stages, base first; `callback(stage, step, t, x, x0)` follows each
    step (x and x̂0 hold the padding rows too)."""
    n = len(keys)
    padded = conditions + [conditions[0]] * (rows - n)
    all_keys = list(keys) + [("\x00padding", j) for j in range(rows - n)]
    cond = torch.from_numpy(np.stack([fit_condition(a, size) for a in padded])).to(device)
    low, high = sample_cascade(base, upsampler, cond, None, base_settings, up_settings, progress,
                               noise=lambda stage: RowNoise.for_pictures(seed, all_keys, stage), callback=callback)
    return low[:n], None if high is None else high[:n]


def _write(plan: Plan, picture: Picture, high: torch.Tensor | None, low: torch.Tensor) -> Path:
    out = plan.job.out
    chunks = provenance.png_chunks(plan.record(picture))
    if plan.job.save_low_res and high is not None:  # first, so a finished picture implies its 64-px file
        save_png(to_uint8(low), out / "64" / picture.file, chunks)
    return save_png(to_uint8(high if high is not None else low), out / picture.file, chunks)


def _read(batch: list[Picture]) -> list[np.ndarray]:
    arrays = {p.condition.name: p.condition.read() for p in batch}  # read when its batch comes
    return [arrays[p.condition.name] for p in batch]


def _write_batch(plan: Plan, batch: list[Picture], low: torch.Tensor, high: torch.Tensor | None) -> list[Path]:
    return [_write(plan, picture, None if high is None else high[i], low[i]) for i, picture in enumerate(batch)]


def _sample_part(plan: Plan, mine: list[Picture], tracker: SampleProgress, result: SampleResult) -> None:
    """Sample `mine` batch by batch. One I/O thread reads the next batch's conditions and
    writes the last batch's PNGs while the network runs (progress counts a batch when it is
    sampled); whatever ends the run (an error, ^C) first waits for the writes already started,
    so every sampled picture is on disk, and a failed write stops the run at the next batch."""
    job = plan.job
    tracker.start()
    size = plan.base.config.encoder.input_size
    batches = [mine[start:start + plan.rows] for start in range(0, len(mine), plan.rows)]
    with ThreadPoolExecutor(1, thread_name_prefix="piti-io") as io:
        reading = io.submit(_read, batches[0]) if batches else None
        writing = None
        for k, batch in enumerate(batches):
            arrays = reading.result()
            if k + 1 < len(batches):
                reading = io.submit(_read, batches[k + 1])
            step = tracker.batch(len(batch))
            low, high = sample_batch(plan.base, plan.upsampler, arrays, [p.key for p in batch], plan.rows, size,
                                     plan.device, job.seed, job.base_settings, job.upsample_settings, step)
            low, high = low.cpu(), None if high is None else high.cpu()
            if writing is not None:
                result.images += writing.result()
            writing = io.submit(_write_batch, plan, batch, low, high)
            tracker.finished(len(batch))
        if writing is not None:
            result.images += writing.result()


def run_sample(job: SampleJob, progress: Callable[..., None] | None = None) -> SampleResult:
    """Sample every picture of `job` not already in `job.out`; `progress(done, total, stage=,
    eta=)` counts pictures (rank 0 reports, its share times the number of ranks)."""
    started, started_at = time.monotonic(), datetime.now(timezone.utc)
    with process_group(job.device) as (info, device):
        plan = make_plan(job, device, info)
        error = None
        result = SampleResult(kept=[job.out / p.file for p in plan.kept], precision=plan.precision,
                              rank=info.rank, world_size=info.world_size, skipped=plan.skipped)
        mine = shard.my_part(plan.pending, info)
        report = _scaled(progress, info.world_size, len(plan.kept)) if info.is_main else None
        ratio = (step_cost_ratio(plan.base, plan.upsampler, job.base_settings, job.upsample_settings)
                 if report is not None and mine else None)
        tracker = SampleProgress(report, len(plan.pictures), len(plan.kept), _steps(plan.base, job.base_settings),
                                 _steps(plan.upsampler, job.upsample_settings), up_per_base=ratio)
        job.out.mkdir(parents=True, exist_ok=True)
        try:
            _sample_part(plan, mine, tracker, result)
        except Exception as err:
            error = err
        shard.agree(info, error)  # all pictures are written once this returns
        if info.is_main:
            result.images = [job.out / p.file for p in plan.pending]
            if job.grid and plan.pictures:
                save_png(_grid(plan), job.out / "grid.png")
        result.seconds = time.monotonic() - started
        if info.is_main:
            result.sidecar = job.out / SIDECAR
            provenance.append_run(result.sidecar, _run_entry(plan, info, started_at, result))
        return result


def _steps(model, settings: StageSettings) -> int:
    return len(stage_process(model, settings).timestep_map) if model is not None else 0


def _scaled(progress, world_size: int, kept: int):
    """Rank 0's count stands for all ranks: its share times the number of ranks."""
    if progress is None or world_size == 1:
        return progress

    def report(done, total, **fields):
        progress(min(total, kept + (done - kept) * world_size), total, **fields)

    return report


def _grid(plan: Plan) -> np.ndarray:
    """One row per condition: the condition as a picture, then its samples."""
    rows = []
    for c in plan.conditions[:GRID_ROWS]:
        samples = [read_image(plan.job.out / p.file, "RGB") for p in plan.pictures if p.condition is c]
        rows.append([resize_nearest(condition_picture(c.read()), samples[0].shape[:2]), *samples])
    return make_grid(rows)


def _run_entry(plan: Plan, info, started_at: datetime, result: SampleResult) -> dict:
    job = plan.job
    settings = {k: v for k, v in asdict(job).items() if k not in ("base_settings", "upsample_settings", "out")}
    return jsonable({
        "started": started_at.isoformat(timespec="seconds"),
        "seconds": round(result.seconds, 2),
        "piti_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(plan.device),
        "precision": plan.precision,
        "world_size": info.world_size,
        "batch_rows": plan.rows,
        "settings": settings,
        "base": {**plan.base_info, **job.base_settings.as_dict()},
        "upsampler": None if plan.up_info is None else {**plan.up_info, **job.upsample_settings.as_dict()},
        "inputs": [c.name for c in plan.conditions],
        "written": [p.file for p in plan.pending],
        "kept": [p.file for p in plan.kept],
    })
