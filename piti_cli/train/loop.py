"""The training loop behind `piti finetune` and `piti upsample-train`.

`train(config)` runs in every process of a torchrun job (or alone). Per step: draw the
global batch's timesteps from the shared sampler (every process holds the same sampler
state), take this process's slice, accumulate gradients over microbatches (each scaled by
microbatch/batch so the gradient is the batch mean; DDP averages over processes), update
the sampler with the losses of all processes in global order, clip, step AdamW, update the
EMAs. Stage `encoder` freezes the decoder; stage `pretrain` trains a GLIDE model on the
pack's captions. Rank 0 writes metrics, grids and checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from piti_cli.diffusion.respace import make_process
from piti_cli.diffusion.timestep_samplers import create_timestep_sampler
from piti_cli.checkpoints.io import non_finite_tensors
from piti_cli.errors import CheckpointError, InputError, PitiError, brief
from piti_cli.pipeline.cascade import StageSettings
from piti_cli.runtime import autocast
from piti_cli.train.config import TrainConfig
from piti_cli.train.data import StepBatches, make_loader
from piti_cli.distributed import DistInfo, barrier, gather_cat, mean_over, process_group
from piti_cli.train import build
from piti_cli.train.ema import EMA
from piti_cli.train.grid import sample_grid
from piti_cli.train.microbatch import microbatch_terms
from piti_cli.train.metrics import append_metrics, check_finite_step, truncate_metrics
from piti_cli.train.state import checkpoint_path, latest_checkpoint, load_state, prune_checkpoints, save_state

Progress = Callable[..., None] | None
# What a training checkpoint was made with: these cannot change when a run continues from it.
FIXED_ON_RESUME = ("init", "glide", "preset", "input_kind", "stage", "upsampler", "ema_rates", "condition_size")


@dataclass
class TrainResult:
    step: int
    run_dir: Path
    checkpoint: Path | None
    last_metrics: dict


class Trainer:
    """One run in one process. Build it with `Trainer.from_run_dir`, which decides whether the
    run starts or continues; `state` is the training checkpoint to continue from."""

    def __init__(self, cfg: TrainConfig, info: DistInfo, device: torch.device, *, state: dict | None = None):
        self.cfg, self.info, self.device = cfg, info, device
        self.run_dir = Path(cfg.run_dir)
        torch.manual_seed(cfg.seed * 1000 + info.rank)
        model, self.config = build.model_for_run(cfg, state)
        self.model = model.to(device)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.ema = EMA(self.model, cfg.ema_rates)
        self.opt = torch.optim.AdamW(self.trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.net: nn.Module = self.model
        if info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        d = self.config.diffusion
        self.process = make_process(d.schedule, d.steps)
        self.sampler = create_timestep_sampler(cfg.timestep_sampler, self.process.num_timesteps, seed=cfg.seed)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        self.autocast = lambda: autocast(device, cfg.precision)
        self.local_batch = cfg.per_rank_batch(info.world_size)
        self.micro = cfg.microbatch_size(info.world_size)
        self.stream = build.stream_for_run(cfg, self.config)
        self.perceptual, self.critic = build.auxiliaries(cfg, self.config, device, info)
        self.step = 0
        if state is not None:
            self._load(state)

    @classmethod
    def from_run_dir(cls, options: TrainConfig, info: DistInfo, device: torch.device, *, resume: bool = False,
                     given: Iterable[str] | None = None) -> "Trainer":
        """Start the run in `options.run_dir`, or continue it: the one place resuming is decided.

        Without `resume` the folder must hold no checkpoint, and `options` is the run's config.
        With `resume` the run's own config.json is the base and only the options the caller
        really gave (`given`: field names; None = every field of `options`) replace its values,
        so `piti finetune --run-dir R --resume` trains to R's own max_steps and `--max-steps N`
        extends it. Training continues from the latest checkpoint (a run without one starts
        afresh) and metric lines logged after that checkpoint are dropped. Rank 0 writes the
        resolved config.json once the trainer is built."""
        run_dir = Path(options.run_dir)
        ckpt = latest_checkpoint(run_dir)
        if ckpt is not None and not resume:
            raise InputError(f"{run_dir}: already holds checkpoints; pass --resume or choose another --run-dir")
        cfg, saved = options, run_dir / "config.json"
        if resume and saved.exists():
            names = [f.name for f in dataclasses.fields(TrainConfig)] if given is None else list(given)
            base = TrainConfig.load(saved)
            cfg = dataclasses.replace(base, **{k: getattr(options, k) for k in names})
            changed = [k for k in FIXED_ON_RESUME if getattr(cfg, k) != getattr(base, k)]
            if changed and ckpt is not None:
                name = changed[0]
                option = "--ema-rate" if name == "ema_rates" else f"--{name.replace('_', '-')}"
                raise InputError(f"{option} {getattr(cfg, name)}: cannot change when resuming "
                                 f"{run_dir} (its checkpoints were made with {getattr(base, name)})")
        state = load_state(ckpt) if (resume and ckpt is not None) else None
        if not cfg.data or (state is None and not cfg.init):  # a continued run has its model
            raise InputError(f"missing --{'data' if not cfg.data else 'init'}")
        trainer = cls(cfg, info, device, state=state)
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(saved)
            truncate_metrics(run_dir / "metrics.jsonl", trainer.step)
        return trainer

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        st = {
            "step": self.step,
            "model_config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "timestep_sampler": self.sampler.state_dict(),
            "rng_torch": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            st["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.critic is not None:
            st["disc"] = self.critic.disc.state_dict()
            st["disc_optimizer"] = self.critic.optimizer.state_dict()
            st["disc_generator"] = self.critic.generator.get_state()
        return st

    def _load(self, st: dict) -> None:
        self.step = int(st["step"])
        try:
            self.model.load_state_dict(st["model"])
            self.ema.load_state_dict(st["ema"])
            self.opt.load_state_dict(st["optimizer"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{self.run_dir}: its latest checkpoint does not fit this run's model and "
                                  f"EMA rates ({type(err).__name__}: {brief(str(err), 100)})") from None
        if st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.sampler.load_state_dict(st["timestep_sampler"])
        if self.info.world_size == 1:  # per-rank streams differ; only a lone process restores its own
            torch.set_rng_state(st["rng_torch"])
            if "rng_cuda" in st and self.device.type == "cuda":
                torch.cuda.set_rng_state(st["rng_cuda"], self.device)
        if self.critic is not None and "disc" in st:
            self.critic.disc.load_state_dict(st["disc"])
            self.critic.optimizer.load_state_dict(st["disc_optimizer"])
            self.critic.generator.set_state(st["disc_generator"])

    def save(self) -> Path | None:
        path = checkpoint_path(self.run_dir, self.step)
        bad = non_finite_tensors(self.model.state_dict())
        if bad:
            raise PitiError(f"step {self.step}: {len(bad)} weights are not finite (first: {bad[0]}); "
                            f"nothing saved at this step; lower --lr or train in fp32")
        if self.info.is_main:
            save_state(path, self.state())
            prune_checkpoints(self.run_dir, self.cfg.keep_checkpoints)
        barrier(self.info)
        return path

    # ------------------------------------------------------------------ step
    def train_step(self, batch: dict, t: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                   per_sample: bool = False) -> dict:
        """One optimisation step on this process's `batch` (its "noise" included).

        `t` (the global batch's process indices, (batch_size,)) and their importance `weights`
        (default 1) replace the draw from the run's timestep sampler, so that given the batch
        and t the step is a pure function of the trainer's state (what a replay test drives).
        The sampler is updated with the losses either way. Returns the batch means of the loss
        terms and "grad_norm"; with `per_sample`, also "per_sample": this process's per-sample
        terms (float32, batch order). A non-finite loss or gradient (fp32/bf16) raises
        `PitiError` naming the step, before anything is logged or saved."""
        cfg, info = self.cfg, self.info
        if t is None:
            t_all, w_all = self.sampler.sample(cfg.batch_size, "cpu")
        else:
            t_all = t.detach().long().cpu()
            w_all = torch.ones(len(t_all)) if weights is None else weights.detach().float().cpu()
            if t_all.shape != (cfg.batch_size,) or w_all.shape != t_all.shape:
                raise ValueError(f"t and weights must have the global batch's shape ({cfg.batch_size},)")
        lo = info.rank * self.local_batch
        t_loc, w_loc = t_all[lo:lo + self.local_batch], w_all[lo:lo + self.local_batch]
        batch = {k: v.to(self.device) for k, v in batch.items() if torch.is_tensor(v) and k != "k"}
        aux = self.step >= cfg.aux_start
        self.opt.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        losses, kept = [], []
        for i in range(0, self.local_batch, self.micro):
            last = i + self.micro >= self.local_batch
            sync = contextlib.nullcontext() if (last or not info.enabled) else self.net.no_sync()
            micro = {k: v[i:i + self.micro] for k, v in batch.items()}
            t = t_loc[i:i + self.micro].to(self.device)
            w = w_loc[i:i + self.micro].to(self.device)
            with sync:
                terms = microbatch_terms(
                    self.net, self.process, micro, t, autocast=self.autocast(),
                    perceptual=self.perceptual if aux else None, perceptual_weight=cfg.perceptual_weight,
                    critic=self.critic if aux else None, adv_weight=cfg.adv_weight, cdf=cfg.nll_cdf,
                )
                loss = (terms["loss"] * w).mean() * (self.micro / self.local_batch)
                self.scaler.scale(loss).backward()
            losses.append(terms["loss"].detach())
            if per_sample:
                kept.append({k: v.detach().float().cpu() for k, v in terms.items()})
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach().sum()
        self.sampler.update_with_all_losses(gather_cat(info, t_loc), gather_cat(info, torch.cat(losses).cpu()))
        self.scaler.unscale_(self.opt)
        norm = torch.nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        self.scaler.step(self.opt)
        self.scaler.update()
        self.ema.update(self.model)
        self.step += 1
        keys = sorted(sums)
        means = mean_over(info, torch.stack([sums[k] for k in keys]).float().cpu() / self.local_batch)
        out = {k: float(v) for k, v in zip(keys, means)}
        out["grad_norm"] = float(norm)
        check_finite_step(self.step, out, cfg.precision)
        if per_sample:
            out["per_sample"] = {k: torch.cat([terms[k] for terms in kept]) for k in kept[0]}
        return out

    # ------------------------------------------------------------------ run
    def preview_items(self) -> dict:
        n = min(self.cfg.sample_count, len(self.stream.pack))
        saved = (self.stream.flip, self.stream.uncond_p, self.stream.crop_size)
        self.stream.flip, self.stream.uncond_p, self.stream.crop_size = False, 0.0, 0  # whole pictures
        try:
            items = [self.stream[k] for k in range(n)]
        finally:
            self.stream.flip, self.stream.uncond_p, self.stream.crop_size = saved
        return {key: torch.stack([it[key] for it in items]) for key in ("image", "condition", "low_res") if key in items[0]}

    def write_grid(self) -> None:
        settings = StageSettings(sampler="ddim", steps=self.cfg.sample_steps, guidance=self.cfg.sample_guidance)
        sample_grid(self.ema.models[0], self.preview_items(), settings, self.cfg.seed,
                    self.run_dir / "samples" / f"step_{self.step:07d}.png")

    def run(self, progress: Progress = None) -> TrainResult:
        cfg, info = self.cfg, self.info
        metrics_path = self.run_dir / "metrics.jsonl"
        loader = make_loader(self.stream, StepBatches(self.step, cfg.max_steps, cfg.batch_size, info.rank,
                                                      info.world_size), cfg.num_workers)
        last, ckpt, t0, start = {}, None, time.perf_counter(), self.step
        if progress:
            progress(self.step, cfg.max_steps)
        for batch in loader:
            last = self.train_step(batch)
            elapsed = time.perf_counter() - t0
            it_s = (self.step - start) / max(elapsed, 1e-9)
            last.update(step=self.step, samples=self.step * cfg.batch_size, lr=cfg.learning_rate, it_s=it_s)
            if info.is_main and (self.step % cfg.log_every == 0 or self.step == cfg.max_steps):
                append_metrics(metrics_path, last)
            if cfg.sample_every and self.step % cfg.sample_every == 0 and info.is_main:
                self.write_grid()
            if self.step % cfg.save_every == 0 or self.step == cfg.max_steps:
                ckpt = self.save()
            if progress:
                progress(self.step, cfg.max_steps, loss=last["loss"], it_s=it_s)
        return TrainResult(self.step, self.run_dir, ckpt or latest_checkpoint(self.run_dir), last)


def train(cfg: TrainConfig, *, resume: bool = False, given: Iterable[str] | None = None,
          progress: Progress = None) -> TrainResult:
    """Train (or resume) one run; call it in every process of a torchrun job. On resume,
    `given` names the fields of `cfg` that replace the run's config.json (None = all of them;
    see `Trainer.from_run_dir`)."""
    with process_group(cfg.device) as (info, device):
        trainer = Trainer.from_run_dir(cfg, info, device, resume=resume, given=given)
        return trainer.run(progress if info.is_main else None)
