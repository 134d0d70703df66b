"""`piti finetune` (base model, stage encoder|joint|pretrain), `piti finetune export`, `piti upsample-train`.

`piti finetune` is a group whose callback carries the training options and trains when no
subcommand follows; `piti finetune export RUN OUT` writes the EMA weights. Multi-GPU or
multi-node: launch the same command under torchrun (`torchrun --nproc-per-node 8 -m piti_cli
finetune ...`); --batch-size is the global batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from piti_cli.cli.options import (
    Command,
    multiple_of_16,
    preset_name,
    CommandGroup, DEVICE_HELP, Degradation, InputKind, NllCdf, Perceptual, Precision, Stage, TimestepSampler, check_device, flag, given_options,
    number, rates,
    respacing,
)
from piti_cli.cli.ui import console, progress_bar

finetune_app = typer.Typer(
    cls=CommandGroup,
    help="Finetune GLIDE's base model into PITI: stage 1 `--stage encoder` (decoder frozen), "
    "stage 2 `--stage joint` (everything); `--stage pretrain` trains a GLIDE file itself on the pack's "
    "captions (text-to-image). Without a subcommand it trains.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(root: typer.Typer) -> None:
    root.add_typer(finetune_app, name="finetune")
    root.command("upsample-train", cls=Command)(upsample_train)


DATA = typer.Option(None, "--data", help="Training pack from `piti prep pack` (.h5).")
RUN_DIR = typer.Option(..., "--run-dir", "-o", help="Run folder: config.json, metrics.jsonl, samples/, checkpoints/.")
RESUME = flag(False, "--resume", help="Continue the run in --run-dir from its latest checkpoint, with its config.json; options given again replace its values (--max-steps N extends the run; what the checkpoints were made with cannot change).")
PRESET = typer.Option(None, "--preset", callback=preset_name, help="Preset of the --init file when its layout names none (e.g. glide-base-tiny, glide-upsample-tiny).")
INPUT_KIND = typer.Option(None, "--input-kind", help="mask | sketch | depth-normal (default: from the pack).")
GLIDE = typer.Option(None, "--glide", help="GLIDE file for an encoder-only --init.")
CONDITION_SIZE = typer.Option(0, "--condition-size", min=0, callback=multiple_of_16, help="GLIDE → PITI: the size at which the new encoder takes its condition, a multiple of 16 ((size/16)² tokens). 0 = the PITI preset's (256; 64 for the tiny presets).")
BATCH = typer.Option(16, "--batch-size", min=1, help="Global batch (all processes together).")
MICRO = typer.Option(0, "--microbatch", min=0, help="Gradient accumulation: microbatch size per process (0 = whole batch).")
LR = typer.Option(None, "--lr", callback=number(0.0, above=True), help="AdamW learning rate (default 3.5e-5 stage encoder, 3e-5 joint, 1e-4 pretrain).")
WD = typer.Option(0.0, "--weight-decay", callback=number(0.0), help="AdamW weight decay.")
EMA = typer.Option(["0.9999"], "--ema-rate", metavar="RATE", callback=rates, help="EMA rate in (0, 1); repeat for several.")
FRACTION = typer.Option(1.0, "--data-fraction", callback=number(0.0, above=True, maximum=1.0), help="Train on this seeded fraction of the pack (paper: 0.25, 0.5).")
FLIP = flag(True, "--flip/--no-flip", help="Random horizontal flips.")
TSAMPLER = typer.Option("loss-second-moment", "--timestep-sampler", help="uniform | loss-second-moment (official) | high-noise (biased to high t, for small models trained from scratch).")
NLL_CDF = typer.Option("tanh", "--nll-cdf", help="Normal CDF of the t = 0 loss term: tanh (the official approximation) | exact (Φ itself; a departure).")
STEPS = typer.Option(1000, "--max-steps", min=1, help="Train until this step (counted over resumes).")
CLIP = typer.Option(0.0, "--grad-clip", callback=number(0.0), help="Clip the gradient norm (0 = off).")
PRECISION = typer.Option("fp32", "--precision", help="fp32 | bf16 | fp16 (autocast; fp16 with loss scaling, GPU only).")
DEVICE = typer.Option("auto", "--device", callback=check_device, help=DEVICE_HELP)
SEED = typer.Option(0, "--seed", min=0, help="Seed of the initial noise, timesteps, flips and data order.")
WORKERS = typer.Option(0, "--workers", min=0, help="DataLoader worker processes.")
LOG_EVERY = typer.Option(10, "--log-every", min=1, help="Append a metrics.jsonl line every N steps.")
SAVE_EVERY = typer.Option(1000, "--save-every", min=1, help="Write a training checkpoint every N steps (and at the end).")
SAMPLE_EVERY = typer.Option(0, "--sample-every", min=0, help="Write a sample grid every N steps (0 = never).")
SAMPLE_STEPS = typer.Option("ddim25", "--sample-steps", callback=respacing, help="Respacing for the sample grids.")
KEEP = typer.Option(2, "--keep-checkpoints", min=1, help="How many training checkpoints to keep.")


def _run(cfg_kwargs: dict, resume: bool, given: set[str]) -> None:
    """Train with these options; whether the run starts or continues (and which options
    replace a resumed run's config.json) is decided by `Trainer.from_run_dir`."""
    from piti_cli.train.config import TrainConfig
    from piti_cli.train.loop import train

    import contextlib
    import os

    from piti_cli.io_utils import output_lock

    cfg = TrainConfig(**cfg_kwargs)
    # one run per folder (the main process of a torchrun job holds the lock for all of them);
    # a new folder whose run fails before its first checkpoint (unwritable, bad input) is removed again
    main_process = os.environ.get("RANK", "0") == "0"
    lock = output_lock(cfg.run_dir, "--run-dir", worth_keeping="checkpoints") if main_process else contextlib.nullcontext()
    with lock, progress_bar("train") as update:
        result = train(cfg, resume=resume, given=given & set(cfg_kwargs), progress=update)
    console.print(f"step {result.step}: checkpoint {result.checkpoint}  run {result.run_dir}")


@finetune_app.callback()
def finetune(
    ctx: typer.Context,
    data: Optional[str] = DATA,
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", "-o", help="Run folder: config.json, metrics.jsonl, samples/, checkpoints/."),
    stage: Stage = typer.Option("encoder", "--stage", help="encoder (stage 1: decoder frozen) | joint (stage 2: everything) | pretrain (a GLIDE model on the pack's captions)."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from: GLIDE base.pt (path or registry id, e.g. glide-base), a PITI file, or a stage-1 run folder. Default for --stage encoder: glide-base."),
    resume: bool = RESUME,
    preset: Optional[str] = PRESET,
    input_kind: Optional[InputKind] = INPUT_KIND,
    glide: Optional[str] = GLIDE,
    condition_size: int = CONDITION_SIZE,
    batch_size: int = BATCH,
    microbatch: int = MICRO,
    lr: Optional[float] = LR,
    weight_decay: float = WD,
    ema_rate: List[str] = EMA,
    uncond_p: float = typer.Option(0.2, "--uncond-p", callback=number(0.0, maximum=1.0), help="Probability of the null condition (classifier-free guidance)."),
    data_fraction: float = FRACTION,
    flip: bool = FLIP,
    timestep_sampler: TimestepSampler = TSAMPLER,
    nll_cdf: NllCdf = NLL_CDF,
    max_steps: int = STEPS,
    grad_clip: float = CLIP,
    precision: Precision = PRECISION,
    device: str = DEVICE,
    seed: int = SEED,
    workers: int = WORKERS,
    log_every: int = LOG_EVERY,
    save_every: int = SAVE_EVERY,
    sample_every: int = SAMPLE_EVERY,
    sample_steps: str = SAMPLE_STEPS,
    keep_checkpoints: int = KEEP,
) -> None:
    """Finetune the 64×64 base model (trains when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    if run_dir is None:
        raise typer.BadParameter("missing --run-dir")
    if init is None and stage == "encoder":
        init = "glide-base"
    kwargs = _config_kwargs(dict(locals()), upsampler=False)
    _run(kwargs, resume, _given(ctx))


@finetune_app.command("export", cls=Command)
def export(
    run: Path = typer.Argument(..., metavar="RUN", help="Run folder (its latest checkpoint) or a training checkpoint file."),
    out: Path = typer.Argument(..., metavar="OUT", help="Output: .pt (official plain layout) or .safetensors (with the config)."),
    rate: Optional[float] = typer.Option(None, "--ema-rate", callback=number(0.0, above=True, maximum=1.0), help="Which EMA when the run keeps several (default: the first)."),
    raw: bool = flag(False, "--raw", help="Export the trained weights, not an EMA (for short runs: an EMA of rate r still holds r^steps of the initial weights)."),
) -> None:
    """Write the EMA weights as a model file that `piti sample` loads."""
    from piti_cli.cli.ui import print_warning
    from piti_cli.train.state import export_ema

    path, config, step = export_ema(run, out, rate, raw, warn=print_warning)
    console.print(f"wrote {path} ({config.name}, {'trained weights' if raw else 'EMA'} at step {step})")


def upsample_train(
    ctx: typer.Context,
    data: Optional[str] = DATA,
    run_dir: Path = RUN_DIR,
    init: str = typer.Option("glide-upsample", "--init", help="GLIDE upsample.pt (path or registry id) or a PITI upsampler file / run folder."),
    stage: Stage = typer.Option("joint", "--stage", help="joint (official) | encoder | pretrain (a GLIDE upsampler on the pack's captions)."),
    resume: bool = RESUME,
    preset: Optional[str] = PRESET,
    input_kind: Optional[InputKind] = INPUT_KIND,
    condition_size: int = CONDITION_SIZE,
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Global batch (official: 4)."),
    microbatch: int = MICRO,
    lr: float = typer.Option(1e-5, "--lr", callback=number(0.0, above=True), help="AdamW learning rate (official upsampler: 1e-5)."),
    ema_rate: List[str] = EMA,
    uncond_p: float = typer.Option(0.0, "--uncond-p", callback=number(0.0, maximum=1.0), help="Null-condition probability (official upsampler: 0)."),
    data_fraction: float = FRACTION,
    flip: bool = FLIP,
    timestep_sampler: TimestepSampler = typer.Option("uniform", "--timestep-sampler", help="uniform (official upsampler) | loss-second-moment | high-noise."),
    nll_cdf: NllCdf = NLL_CDF,
    max_steps: int = STEPS,
    grad_clip: float = CLIP,
    precision: Precision = PRECISION,
    device: str = DEVICE,
    seed: int = SEED,
    workers: int = WORKERS,
    perceptual: Perceptual = typer.Option("vgg", "--perceptual", help="vgg (VGG-19 conv2_2, paper) | lpips | none."),
    perceptual_weight: float = typer.Option(0.004, "--perceptual-weight", callback=number(0.0), help="Weight of the perceptual loss."),
    perceptual_weights_file: Optional[str] = typer.Option(None, "--perceptual-weights", help="Local VGG-19 state dict (no download)."),
    adv_weight: float = typer.Option(0.01, "--adv-weight", callback=number(0.0), help="WGAN-GP PatchGAN loss weight (0 = off)."),
    aux_start: int = typer.Option(100, "--aux-start", min=0, help="Perceptual and adversarial losses start at this step."),
    degradation: Degradation = typer.Option("bsr", "--degradation", help="Low-res inputs: bsr (PITI: blur, noise, JPEG, resize; on the fly) | bicubic (the clean 4× PIL-bicubic reduction, GLIDE-style pretraining)."),
    crop_size: int = typer.Option(0, "--crop-size", min=0, help="Train on random crops of this size, e.g. 128 (4× cheaper per step than whole 256² pictures; must be a multiple of the UNet's down-sampling factor). 0 = whole pictures (official)."),
    disc_lr: float = typer.Option(1e-5, "--disc-lr", callback=number(0.0, above=True), help="Learning rate of the PatchGAN critic."),
    log_every: int = LOG_EVERY,
    save_every: int = SAVE_EVERY,
    sample_every: int = SAMPLE_EVERY,
    keep_checkpoints: int = KEEP,
) -> None:
    """Train the 64→256 upsampler (low-res inputs degraded on the fly, BSR pipeline)."""
    kwargs = _config_kwargs(dict(locals()), upsampler=True, sample_steps="fast27")
    if perceptual == "none":
        kwargs["perceptual_weight"] = 0.0
    given = _given(ctx)
    if perceptual == "none" and "perceptual" in given:
        given.add("perceptual_weight")  # the 0.0 set above
    _run(kwargs, resume, given)


# CLI parameter name -> TrainConfig field, where they differ
_FIELD_NAMES = {"ema_rate": "ema_rates", "workers": "num_workers"}


def _config_kwargs(params: dict, **fixed) -> dict:
    """The TrainConfig fields among a command's parameters, plus `fixed` values."""
    import dataclasses

    from piti_cli.train.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    kwargs = {_FIELD_NAMES.get(k, k): v for k, v in params.items() if _FIELD_NAMES.get(k, k) in fields}
    kwargs["ema_rates"] = tuple(float(r) for r in kwargs["ema_rates"])
    kwargs["run_dir"] = str(kwargs["run_dir"])
    kwargs.update(fixed)
    return kwargs


def _given(ctx: typer.Context) -> set[str]:
    """The TrainConfig fields the user really set (`options.given_options`, renamed)."""
    return {_FIELD_NAMES.get(name, name) for name in given_options(ctx)}
