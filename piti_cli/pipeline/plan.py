"""What a `piti sample` run will do, decided before any sampling, the same on every rank.

`make_plan` takes three small steps (four without a batch size), each a function returning a
frozen value, with the ranks meeting after each (`shard.agree`: a problem on any rank stops
every rank with the same message): load the models and list the inputs (`Loaded`); check the inputs, each rank its
share, and name the pictures (`Pictures`); check the earlier outputs, each rank its share, and
split the pictures into kept and pending (`Plan`, with the models prepared for sampling); and,
when the job names no batch size, measure what fits each rank's device and take the smallest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from piti_cli.diffusion.respace import space_timesteps
from piti_cli.errors import InputError
from piti_cli.io_utils import keep_inputs
from piti_cli.pipeline import provenance, shard
from piti_cli.pipeline.batching import auto_rows
from piti_cli.pipeline.cascade import BASE_DEFAULTS, UPSAMPLE_DEFAULTS, StageSettings, prepare
from piti_cli.pipeline.inputs import Condition, check, find_inputs, settle
from piti_cli.pipeline.models import load_pair
from piti_cli.runtime import resolve_precision
from piti_cli.version import __version__

SIDECAR = "piti_sample.json"


@dataclass(frozen=True)
class SampleJob:
    cond: str
    out: Path
    base: str | None = None  # path or registry id
    upsampler: str | None = None
    base_only: bool = False
    base_settings: StageSettings = BASE_DEFAULTS
    upsample_settings: StageSettings = UPSAMPLE_DEFAULTS
    num_samples: int = 1
    batch_size: int | None = None  # pictures per network batch; None: `batching.auto_rows`
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 (the faithful path) | bf16 | fp16
    save_low_res: bool = False
    grid: bool = False
    limit: int | None = None
    weights_dir: str | None = None
    overwrite: bool = False
    strict: bool = False  # an unusable file of a folder refuses the run (else it is skipped, listed)
    compile: bool = False  # torch.compile the networks' per-step call (`cascade.prepare`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))


@dataclass(frozen=True)
class Picture:
    condition: Condition
    index: int  # sample index for this condition
    file: str  # output file name

    @property
    def key(self) -> tuple[str, int]:
        return self.condition.name, self.index


@dataclass(frozen=True)
class Loaded:
    """Step 1: the models as loaded (not yet prepared) and the inputs, unread."""
    base: torch.nn.Module
    base_info: dict
    upsampler: torch.nn.Module | None
    up_info: dict | None
    precision: str
    inputs: list[Condition]


@dataclass(frozen=True)
class Pictures:
    """Step 2: the usable conditions, the pictures named after them, the skipped files."""
    conditions: list[Condition]
    pictures: list[Picture]
    skipped: list[tuple[str, str]]
    rows: int | None  # pictures per network batch as the job asks (None: chosen by `make_plan`)


@dataclass(frozen=True)
class Plan:
    """Step 3: everything a rank needs to sample its share."""
    job: SampleJob
    device: torch.device
    precision: str
    base: torch.nn.Module  # prepared (device, dtype)
    upsampler: torch.nn.Module | None
    base_info: dict
    up_info: dict | None
    conditions: list[Condition]
    pictures: list[Picture]
    skipped: list[tuple[str, str]]
    rows: int | None  # pictures per network batch (None until `make_plan` chooses it)
    kept: list[Picture]
    pending: list[Picture]

    def record(self, picture: Picture) -> dict:
        return picture_record(picture.condition.name, picture.condition.digest, picture.index, self.job.seed,
                              self.precision, self.base_info, self.up_info, self.job.base_settings,
                              self.job.upsample_settings, self.device.type)


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


def jsonable(record: dict) -> dict:
    """The record as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(record))


def load(job: SampleJob, device: torch.device) -> Loaded:
    """Step 1: check the settings and the run record, load the pair, list the inputs."""
    for flag, settings in (("--steps", job.base_settings), ("--upsample-steps", job.upsample_settings)):
        try:
            space_timesteps(1000, settings.steps)
        except ValueError as err:
            raise InputError(f"{flag} {settings.steps}: {err}") from None
    if job.num_samples < 1 or (job.batch_size is not None and job.batch_size < 1):
        raise InputError("--num-samples and --batch-size must be at least 1")
    pack = job.cond.rsplit(":", 1)[0]  # data.h5:START-STOP names the file data.h5
    keep_inputs(job.out, {"--cond": job.cond if Path(job.cond).exists() else pack})
    provenance.check_record(job.out / SIDECAR)  # a damaged record refuses before sampling
    precision = resolve_precision(job.precision, device)
    base, base_info, up, up_info = load_pair(job.base, job.upsampler, job.base_only, job.weights_dir)
    return Loaded(base, base_info, up, up_info, precision, find_inputs(job.cond, base.config.input_kind, job.limit))


def name_pictures(job: SampleJob, checked: list) -> Pictures:
    """Step 2 from every rank's checked inputs: bad input writes nothing; unusable files of a
    folder are skipped and listed (refused with `job.strict`)."""
    skipped: list[tuple[str, str]] = []
    conditions = settle(checked, None if job.strict else skipped)
    names = [c.name for c in conditions]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"{twice[0]}: two inputs have this name and would write the same picture; rename one")
    pictures = [Picture(c, k, f"{c.name}.png" if job.num_samples == 1 else f"{c.name}_{k}.png")
                for c in conditions for k in range(job.num_samples)]
    rows = None if job.batch_size is None else max(1, min(job.batch_size, len(pictures)))
    return Pictures(conditions, pictures, skipped, rows)


def output_state(job: SampleJob, loaded: Loaded, device: torch.device, picture: Picture) -> str:
    """"pending", "kept" (finished by an earlier run with these settings) or the reason its
    file conflicts with this run."""
    path = job.out / picture.file
    if job.overwrite or not path.exists():
        return "pending"
    record = picture_record(picture.condition.name, picture.condition.digest, picture.index, job.seed,
                            loaded.precision, loaded.base_info, loaded.up_info, job.base_settings,
                            job.upsample_settings, device.type)
    reason = provenance.conflict(path, jsonable(record))
    if reason:
        return reason
    low_missing = job.save_low_res and loaded.up_info is not None and not (job.out / "64" / picture.file).exists()
    return "pending" if low_missing else "kept"


def finish(job: SampleJob, device: torch.device, loaded: Loaded, named: Pictures, states: list[str]) -> Plan:
    """Step 3 from every rank's output states: the first conflict refuses the run."""
    for state in states:
        if state not in ("pending", "kept"):
            raise provenance.refuse_mixing(state)
    up = prepare(loaded.upsampler, device, loaded.precision, job.compile) if loaded.upsampler is not None else None
    base = prepare(loaded.base, device, loaded.precision, job.compile)
    return Plan(job, device, loaded.precision, base, up,
                loaded.base_info, loaded.up_info, named.conditions, named.pictures, named.skipped, named.rows,
                kept=[p for p, s in zip(named.pictures, states) if s == "kept"],
                pending=[p for p, s in zip(named.pictures, states) if s == "pending"])


def batch_rows(plan: Plan) -> list[int]:
    """Step 4 when the job names no batch size: what fits this rank (`batching.auto_rows`)."""
    if not plan.pending:
        return [1]
    return [auto_rows(plan.base, plan.upsampler, plan.job.base_settings, plan.job.upsample_settings, plan.device,
                      len(plan.pictures))]


def _on_every_rank(info, step, *args):
    """`step(*args)` here; then the ranks meet, and a failure on any rank stops them all."""
    result, error = None, None
    try:
        result = step(*args)
    except Exception as err:
        error = err
    shard.agree(info, error)
    return result


def make_plan(job: SampleJob, device: torch.device, info) -> Plan:
    """The plan, the same on every rank; each rank reads only its share of the inputs and of
    the earlier outputs (`shard.my_part`), and the results are gathered."""
    loaded = _on_every_rank(info, load, job, device)
    checked = _on_every_rank(info, lambda: check(shard.my_part(loaded.inputs, info)))
    named = _on_every_rank(info, name_pictures, job, shard.gather(checked, info))
    states = _on_every_rank(info, lambda: [output_state(job, loaded, device, p)
                                           for p in shard.my_part(named.pictures, info)])
    plan = _on_every_rank(info, finish, job, device, loaded, named, shard.gather(states, info))
    if plan.rows is None:  # every rank measures its own card; all take the smallest batch
        plan = replace(plan, rows=min(shard.gather(_on_every_rank(info, batch_rows, plan), info)))
    return plan
