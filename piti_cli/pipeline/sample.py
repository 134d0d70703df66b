"""`piti sample` as a core function: conditions in, PNGs and a record of the run out.

A run is a list of pictures, each named by (condition id, sample index). Each picture's noise
comes from its own generators (`pipeline.noise`), so it does not depend on which batch or
process samples it; under torchrun the pending pictures are split over the ranks
(`pipeline.shard`). Network batches always hold the same number of rows (the last one is
padded), so a picture is computed with the same arithmetic in any split or rerun. Every PNG
is written atomically with its settings in a text chunk (`pipeline.provenance`): a rerun into
the same folder keeps the finished pictures whose settings match and does the rest.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from piti_cli.version import __version__
from piti_cli.data.images import condition_picture, make_grid, read_image, resize_nearest, save_png, to_uint8
from piti_cli.diffusion.respace import space_timesteps
from piti_cli.errors import InputError
from piti_cli.pipeline import provenance, shard
from piti_cli.pipeline.cascade import (
    BASE_DEFAULTS,
    UPSAMPLE_DEFAULTS,
    StageSettings,
    prepare,
    sample_cascade,
    stage_process,
)
from piti_cli.pipeline.inputs import Condition, check, find_inputs, fit_to_encoder, settle
from piti_cli.pipeline.models import DEFAULT_BASE, DEFAULT_UPSAMPLER, load_pair, load_stage
from piti_cli.pipeline.noise import RowNoise
from piti_cli.pipeline.progress import SampleProgress
from piti_cli.runtime import resolve_precision
from piti_cli.distributed import process_group

SIDECAR = "piti_sample.json"
GRID_ROWS = 16  # grid.png shows the first conditions only: a dataset-size grid is unreadable
_load = load_stage  # `pipeline.edit` loads its checkpoints the same way
__all__ = ["DEFAULT_BASE", "DEFAULT_UPSAMPLER", "SIDECAR", "SampleJob", "SampleResult", "run_sample", "_load"]


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
    precision: str = "auto"  # auto | fp32 (the faithful path) | bf16 | fp16
    save_low_res: bool = False
    grid: bool = False
    limit: int | None = None
    weights_dir: str | None = None
    overwrite: bool = False
    strict: bool = False  # an unusable file of a folder refuses the run (else it is skipped, listed)


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


@dataclass(frozen=True)
class Picture:
    condition: Condition
    index: int  # sample index for this condition
    file: str  # output file name

    @property
    def key(self) -> tuple[str, int]:
        return self.condition.name, self.index


def _check_settings(job: SampleJob) -> None:
    for flag, settings in (("--steps", job.base_settings), ("--upsample-steps", job.upsample_settings)):
        try:
            space_timesteps(1000, settings.steps)
        except ValueError as err:
            raise InputError(f"{flag} {settings.steps}: {err}") from None
    if job.num_samples < 1 or job.batch_size < 1:
        raise InputError("--num-samples and --batch-size must be at least 1")


def _pictures(conditions: list[Condition], num_samples: int) -> list[Picture]:
    seen: dict[str, int] = {}
    for c in conditions:
        seen[c.name] = seen.get(c.name, 0) + 1
    twice = [name for name, n in seen.items() if n > 1]
    if twice:
        raise InputError(f"{twice[0]}: two inputs have this name and would write the same picture; rename one")
    return [Picture(c, k, f"{c.name}.png" if num_samples == 1 else f"{c.name}_{k}.png")
            for c in conditions for k in range(num_samples)]


class _Plan:
    """Everything every rank knows before sampling: models, pictures, what is left to do.

    Built in three steps around the ranks' meetings (`make_plan`): the models and the list of
    inputs; the pictures, once every rank has checked its share of the inputs; what is
    pending, once every rank has checked its share of the earlier outputs."""

    def __init__(self, job: SampleJob, device: torch.device):
        _check_settings(job)
        provenance.check_record(Path(job.out) / SIDECAR)  # a damaged record refuses before sampling
        self.job, self.device = job, device
        self.precision = resolve_precision(job.precision, device)
        self._base, self.base_info, self._up, self.up_info = load_pair(
            job.base, job.upsampler, job.base_only, job.weights_dir)
        self.inputs = find_inputs(job.cond, self._base.config.input_kind, job.limit)

    def settle_inputs(self, checked: list) -> None:
        # Every input is checked before any sampling: bad input writes nothing; unusable
        # files of a folder are skipped and listed (refused with job.strict).
        self.skipped: list[tuple[str, str]] = []
        self.conditions = settle(checked, None if self.job.strict else self.skipped)
        self.pictures = _pictures(self.conditions, self.job.num_samples)
        # Rows per network batch, the same in every process and rerun of this job.
        self.rows = max(1, min(self.job.batch_size, len(self.pictures)))

    def settle_outputs(self, states: list[str]) -> None:
        """`states[i]` is `output_state` of picture i: finished pictures are kept, the rest
        pending; the first conflict refuses the run."""
        for state in states:
            if state not in ("pending", "kept"):
                raise provenance.refuse_mixing(state)
        self.pending = [p for p, state in zip(self.pictures, states) if state == "pending"]
        self.kept = [p for p, state in zip(self.pictures, states) if state == "kept"]
        self.base = prepare(self._base, self.device, self.precision)
        self.upsampler = prepare(self._up, self.device, self.precision) if self._up is not None else None

    def record(self, picture: Picture) -> dict:
        job = self.job
        return picture_record(picture.condition.name, picture.condition.digest, picture.index, job.seed,
                              self.precision, self.base_info, self.up_info, job.base_settings,
                              job.upsample_settings, self.device.type)

    def output_state(self, picture: Picture) -> str:
        """"pending", "kept" (finished by an earlier run with these settings) or the reason
        its file conflicts with this run."""
        job = self.job
        path = job.out / picture.file
        if job.overwrite or not path.exists():
            return "pending"
        reason = provenance.conflict(path, _jsonable(self.record(picture)))
        if reason:
            return reason
        low_missing = job.save_low_res and self.up_info is not None and not (job.out / "64" / picture.file).exists()
        return "pending" if low_missing else "kept"



def picture_record(name: str, digest: str, index: int, seed: int, precision: str, base_info: dict,
                   up_info: dict | None, base_settings: StageSettings, up_settings: StageSettings,
                   device: str) -> dict:
    """What made a picture (its PNG's `piti` text chunk): the same for `piti sample` and the API."""
    return {
        "condition": name, "condition_sha256": digest, "sample_index": index, "seed": seed, "precision": precision,
        "base": {"sha256": base_info["sha256"], "preset": base_info["preset"], **base_settings.as_dict()},
        "upsampler": None if up_info is None else {
            "sha256": up_info["sha256"], "preset": up_info["preset"], **up_settings.as_dict()},
        "piti_version": __version__, "device": device,
    }


def sample_batch(base, upsampler, conditions: list[np.ndarray], keys: list[tuple[str, int]], rows: int, size: int,
                 device: torch.device, seed: int, base_settings: StageSettings, up_settings: StageSettings,
                 progress=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One network batch of pictures, as every run samples it: the conditions (C, 256, 256)
    fitted to the encoder's `size` and padded to `rows` (a picture's arithmetic never depends
    on how many share its batch), each picture's noise from its key (condition name, sample
    index). Returns (64-px, final or None) for the real rows only; `progress(done, total)`
    counts the steps of both stages, base first."""
    n = len(keys)
    padded = conditions + [conditions[0]] * (rows - n)
    all_keys = list(keys) + [("\x00padding", j) for j in range(rows - n)]
    cond = torch.from_numpy(np.stack([fit_to_encoder(a, size) for a in padded])).to(device)
    low, high = sample_cascade(base, upsampler, cond, None, base_settings, up_settings, progress,
                               noise=lambda stage: RowNoise.for_pictures(seed, all_keys, stage))
    return low[:n], None if high is None else high[:n]


def make_plan(job: SampleJob, device: torch.device, info) -> _Plan:
    """The plan, the same on every rank. Each rank reads and checks only its share of the
    inputs and of the earlier outputs (`shard.my_part`); the results are gathered, so a
    problem anywhere stops every rank with the same message (`shard.agree`)."""
    result, part, error = None, None, None
    try:
        result = _Plan(job, device)
        part = check(shard.my_part(result.inputs, info))
    except Exception as err:  # every rank stops on any rank's bad input
        error = err
    shard.agree(info, error)
    try:
        result.settle_inputs(shard.gather(part, info))
        states = [result.output_state(p) for p in shard.my_part(result.pictures, info)]
    except Exception as err:
        error = err
    shard.agree(info, error)
    try:
        result.settle_outputs(shard.gather(states, info))
    except Exception as err:
        error = err
    shard.agree(info, error)
    return result


def _jsonable(record: dict) -> dict:
    """The record as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(record))


def _write(plan: _Plan, picture: Picture, high: torch.Tensor | None, low: torch.Tensor) -> Path:
    out = plan.job.out
    chunks = provenance.png_chunks(plan.record(picture))
    if plan.job.save_low_res and high is not None:  # first, so a finished picture implies its 64-px file
        save_png(to_uint8(low), out / "64" / picture.file, chunks)
    return save_png(to_uint8(high if high is not None else low), out / picture.file, chunks)


def _sample_part(plan: _Plan, mine: list[Picture], tracker: SampleProgress, result: SampleResult) -> None:
    job = plan.job
    tracker.start()
    size = plan.base.config.encoder.input_size
    for start in range(0, len(mine), plan.rows):
        batch = mine[start:start + plan.rows]
        arrays = {p.condition.name: p.condition.read() for p in batch}  # read when its batch comes
        step = tracker.batch(len(batch))
        low, high = sample_batch(plan.base, plan.upsampler, [arrays[p.condition.name] for p in batch],
                                 [p.key for p in batch], plan.rows, size, plan.device, job.seed,
                                 job.base_settings, job.upsample_settings, step)
        for i, picture in enumerate(batch):
            result.images.append(_write(plan, picture, None if high is None else high[i], low[i]))
        tracker.finished(len(batch))


def run_sample(job: SampleJob, progress: Callable[..., None] | None = None) -> SampleResult:
    """Sample every picture of `job` not already in `job.out`; `progress(done, total, stage=,
    eta=)` counts pictures (rank 0 reports, its share times the number of ranks)."""
    started, started_at = time.monotonic(), datetime.now(timezone.utc)
    job.out = Path(job.out)
    with process_group(job.device) as (info, device):
        plan = make_plan(job, device, info)
        error = None
        result = SampleResult(kept=[job.out / p.file for p in plan.kept], precision=plan.precision,
                              rank=info.rank, world_size=info.world_size, skipped=plan.skipped)
        mine = shard.my_part(plan.pending, info)
        report = _scaled(progress, info.world_size, len(plan.kept)) if info.is_main else None
        tracker = SampleProgress(report, len(plan.pictures), len(plan.kept), _steps(plan.base, job.base_settings),
                                 _steps(plan.upsampler, job.upsample_settings))
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
            result.sidecar = job.out / SIDECAR
            provenance.append_run(result.sidecar, _run_entry(plan, info, started_at, result))
        result.seconds = time.monotonic() - started
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


def _grid(plan: _Plan) -> np.ndarray:
    """One row per condition: the condition as a picture, then its samples."""
    rows = []
    for c in plan.conditions[:GRID_ROWS]:
        samples = [read_image(plan.job.out / p.file, "RGB") for p in plan.pictures if p.condition is c]
        rows.append([resize_nearest(condition_picture(c.read()), samples[0].shape[:2]), *samples])
    return make_grid(rows)


def _run_entry(plan: _Plan, info, started_at: datetime, result: SampleResult) -> dict:
    job = plan.job
    settings = {k: v for k, v in asdict(job).items() if k not in ("base_settings", "upsample_settings", "out")}
    return _jsonable({
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
