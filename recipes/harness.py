"""The training run shared by the demo recipe and the learning proof, in resumable chunks.

`scene_base_config` is the base model's run on procedural scenes (`piti_cli.data.scenes`);
`train_for` trains any run in chunks until a time budget is spent, counting the time across
reruns, so an interrupted recipe continues where it stopped; `sample` draws one stage's
samples from a seed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from piti_cli.io_utils import atomic_write_text
from piti_cli.runtime import resolve_precision
from piti_cli.pipeline.cascade import StageSettings, sample_stage
from piti_cli.train.config import TrainConfig
from piti_cli.train.loop import train
from piti_cli.train.state import list_checkpoints


def scene_base_config(data, run_dir, init, device: str = "cpu", **changes) -> TrainConfig:
    """The base model's runs on procedural scenes (the demo recipe's stages and ablation, the
    learning proof): the mask enters the new encoder at 64², the tiny preset's size (4² tokens,
    one per 16 × 16 pixels of the 64-px picture, on the grid of the pretraining captions: after
    stage 1 alone, 4 minutes, 0.650 of the pixels follow the mask against 0.534 with the real
    PITI's 256² and 16² tokens, first 8 held-out masks); batch 8; lr well above the
    official 3.5e-5, which is for finetuning a 300 M model; `high-noise` timesteps
    (p(t) ∝ (t/N)²), where a small model trained for minutes learns what the condition decides
    (with near-uniform t it learns to denoise these scenes without looking at it; see
    `piti_cli.diffusion.timestep_samplers.HighNoiseSampler`); bf16 autocast where the device
    has native bf16 (on the 2-core CPU 1.66× the steps of fp32, the same loss). `changes`
    replace fields."""
    cfg = TrainConfig(
        data=str(data), run_dir=str(run_dir), init=str(init), input_kind="mask",
        stage="joint", batch_size=8, lr=5e-4, ema_rates=(0.995,), uncond_p=0.1, timestep_sampler="high-noise",
        max_steps=0, log_every=10, save_every=50, keep_checkpoints=1, device=device, seed=0, condition_size=64,
        precision=resolve_precision("auto", torch.device(device)))
    return dataclasses.replace(cfg, **changes)


def sample(model, conds: torch.Tensor, sampler: str, steps: str, guidance: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return sample_stage(model.eval(), conds, StageSettings(sampler=sampler, steps=steps, guidance=guidance), g)


def train_for(cfg, minutes: float, budget_file: Path, chunk: int, report=print, steps: int = 0) -> int:
    """Train in resumable chunks of `chunk` steps until `steps` (when > 0) are done or `minutes`
    of training have been spent, counted across reruns in `budget_file`, whichever comes first;
    returns the step reached (a slow day reaches fewer steps: the log and report say how many)."""
    spent = json.loads(budget_file.read_text())["seconds"] if budget_file.exists() else 0.0
    step = _latest_step(cfg.run_dir)
    while spent < minutes * 60 and not (steps and step >= steps):
        start = time.perf_counter()
        cfg.max_steps = step + chunk if not steps else min(steps, step + chunk)
        result = train(cfg, resume=True)  # continues the run's latest checkpoint, if it has one
        step = result.step
        spent += time.perf_counter() - start
        atomic_write_text(budget_file, json.dumps({"seconds": spent, "step": step}))
        report(f"{Path(cfg.run_dir).name}: step {step}, loss {result.last_metrics.get('loss', float('nan')):.4f}, "
               f"{spent / 60:.1f}/{minutes:.0f} min")
    return step or _latest_step(cfg.run_dir)


def _latest_step(run_dir) -> int:
    found = list_checkpoints(run_dir)
    return found[-1][0] if found else 0
