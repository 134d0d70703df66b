"""The resolved configuration of one training run (stored as `config.json` in the run folder).

One dataclass covers both commands: `piti finetune` (base model, stage `encoder` or `joint`)
and `piti upsample-train` (64→256 upsampler, `upsampler=True`). Stage `pretrain` trains a
GLIDE model itself on the pack's captions (text-to-image pretraining, what GLIDE's
`base.pt` / `upsample.pt` are; used for the demo's tiny GLIDE files). Defaults follow the official
scripts: AdamW without weight decay, EMA 0.9999, loss-second-moment timestep sampler,
lr 3.5e-5 for stage 1 and 3e-5 for stage 2; the upsampler adds a VGG perceptual loss
(weight 0.004) and a WGAN-GP PatchGAN loss (weight 0.01), both off for the first 100 steps.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piti_cli.diffusion.losses import NORMAL_CDFS
from piti_cli.diffusion.timestep_samplers import TIMESTEP_SAMPLERS
from piti_cli.errors import InputError
from piti_cli.io_utils import atomic_write_text

STAGES = ("encoder", "joint", "pretrain")
DEFAULT_LR = {"encoder": 3.5e-5, "joint": 3e-5, "pretrain": 1e-4}
PERCEPTUAL = ("vgg", "lpips", "none")
DEGRADATIONS = ("bsr", "bicubic")
# fields that only an upsampler run uses: a base run's config.json leaves them out
UPSAMPLER_ONLY = ("perceptual", "perceptual_weight", "perceptual_weights_file", "adv_weight", "aux_start", "disc_lr",
                  "degrade_l0_mode", "degradation", "crop_size")


@dataclass
class TrainConfig:
    data: str  # a `piti prep pack` HDF5 file
    run_dir: str
    init: str  # GLIDE/PITI file, registry id, or a run folder (its latest checkpoint)
    stage: str = "encoder"
    upsampler: bool = False
    preset: str | None = None  # to identify --init files no layout names (tiny presets)
    input_kind: str | None = None  # mask | sketch | depth-normal; default from the pack
    glide: str | None = None  # GLIDE file for an encoder-only --init
    condition_size: int = 0  # GLIDE → PITI: the new encoder's input size (0 = the PITI preset's)
    batch_size: int = 16  # global: summed over all processes
    microbatch: int = 0  # 0 = no gradient accumulation
    lr: float | None = None  # None = the stage default
    weight_decay: float = 0.0
    ema_rates: tuple[float, ...] = (0.9999,)
    uncond_p: float = 0.2
    data_fraction: float = 1.0
    flip: bool = True
    timestep_sampler: str = "loss-second-moment"
    nll_cdf: str = "tanh"  # the t = 0 term's Φ: the official tanh approximation, or "exact"
    max_steps: int = 1000
    grad_clip: float = 0.0  # 0 = off
    precision: str = "fp32"
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    save_every: int = 1000
    sample_every: int = 0  # 0 = no sample grids
    sample_count: int = 4
    sample_steps: str = "ddim25"
    sample_guidance: float = 1.0
    keep_checkpoints: int = 2
    # upsampler extras
    perceptual: str = "vgg"
    perceptual_weight: float = 0.004
    perceptual_weights_file: str | None = None  # local VGG19 / LPIPS weights
    adv_weight: float = 0.01
    aux_start: int = 100  # perceptual and adversarial losses start at this step
    disc_lr: float = 1e-5
    degrade_l0_mode: str = "correct"
    degradation: str = "bsr"  # bsr (PITI's upsampler) | bicubic (clean 4× PIL-bicubic low-res, GLIDE-style pretraining)
    crop_size: int = 0  # train on random crops of this size (0 = whole pictures)

    def __post_init__(self) -> None:
        self.ema_rates = tuple(float(r) for r in self.ema_rates)
        if self.stage not in STAGES:
            raise InputError(f"--stage {self.stage}: choose one of {', '.join(STAGES)}")
        if self.timestep_sampler not in TIMESTEP_SAMPLERS:
            raise InputError(f"--timestep-sampler {self.timestep_sampler}: choose one of {', '.join(TIMESTEP_SAMPLERS)}")
        if self.nll_cdf not in NORMAL_CDFS:
            raise InputError(f"--nll-cdf {self.nll_cdf}: choose one of {', '.join(NORMAL_CDFS)}")
        if self.perceptual not in PERCEPTUAL:
            raise InputError(f"--perceptual {self.perceptual}: choose one of {', '.join(PERCEPTUAL)}")
        if self.condition_size < 0 or self.condition_size % 16:
            raise InputError(f"--condition-size {self.condition_size}: a multiple of 16 (the encoder's stem halves it 4 times), or 0")
        if self.degradation not in DEGRADATIONS:
            raise InputError(f"--degradation {self.degradation}: choose one of {', '.join(DEGRADATIONS)}")
        if not 0.0 < self.data_fraction <= 1.0:
            raise InputError(f"--data-fraction {self.data_fraction}: must be in (0, 1]")
        if not 0.0 <= self.uncond_p <= 1.0:
            raise InputError(f"--uncond-p {self.uncond_p}: must be in [0, 1]")
        if self.batch_size < 1 or self.max_steps < 0:
            raise InputError("--batch-size must be >= 1 and --max-steps >= 0")
        if self.crop_size < 0 or (self.crop_size and not self.upsampler):
            raise InputError(f"--crop-size {self.crop_size}: crops are for the upsampler; 0 (whole pictures) or a size")
        if any(not 0.0 <= r < 1.0 for r in self.ema_rates):
            raise InputError(f"--ema-rate {self.ema_rates}: each rate must be in [0, 1)")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.stage]

    def per_rank_batch(self, world_size: int) -> int:
        if self.batch_size % world_size:
            raise InputError(f"--batch-size {self.batch_size} is not divisible by {world_size} processes")
        return self.batch_size // world_size

    def microbatch_size(self, world_size: int) -> int:
        b = self.per_rank_batch(world_size)
        m = self.microbatch or b
        if b % m:
            raise InputError(f"--microbatch {m} does not divide the per-process batch {b}")
        return m

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def record(self) -> dict[str, Any]:
        """What the run used, for `config.json`: the learning rate resolved (the stage's default
        when none was given) and, for a base model, no upsampler-only field."""
        data = self.to_dict()
        data["lr"] = self.learning_rate
        if not self.upsampler:
            for key in UPSAMPLER_ONLY:
                data.pop(key)
        return data

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.record(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise InputError(f"{path}: cannot read the run config ({err})") from None
