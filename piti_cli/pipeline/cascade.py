"""The PITI cascade: base model at 64×64 under guidance, then the 64→256 upsampler.

Networks meet the diffusion process here, and only here: a network plus a precomputed
condition embedding becomes a denoiser `(x_t, t) -> output`; guidance wraps it; a sampler
walks the respaced process. The condition encoder runs once per batch, not per step.
"""

from __future__ import annotations

import dataclasses

from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch

from piti_cli.data.images import fit_condition
from piti_cli.diffusion import samplers
from piti_cli.diffusion.guidance import classifier_free
from piti_cli.diffusion.respace import make_process, truncate
from piti_cli.errors import PitiError
from piti_cli.models.encoder import ConditionEmbedding
from piti_cli.models.piti import PitiModel, build_model
from piti_cli.models.unet import enlarge_low_res
from piti_cli.pipeline.progress import offset
from piti_cli.runtime import PRECISIONS, check_precision

Progress = Callable[[int, int], None] | None


@dataclass(frozen=True)
class StageSettings:
    sampler: str = "ancestral"
    steps: str = "250"  # respacing: "250", "ddim50", "fast27", "10,10,3,2,2"
    guidance: float = 1.3  # s in ε_u + s(ε_c − ε_u); 1 = no guidance (one forward, no null batch)
    normalized: bool = False
    eta: float = 0.0  # DDIM only
    init_scale: float = 1.0  # the official upsampler starts from 0.997 · noise
    clip_denoised: bool = True  # clip x0 predictions to [-1, 1] as the official sampler does
    # guide only for network t in [lo, hi] (0..1000); outside, the null half is not run
    guidance_interval: tuple[float, float] | None = None
    # upsampler only: start at this timestep (0..999) from the enlarged low-res picture plus
    # noise, √ᾱ·enlarge(low) + √(1−ᾱ)·init_scale·ε, and take only the steps at t ≤ start
    # (SDEdit-style); None = from pure noise at the top step, as the official sampler
    start: int | None = None

    def as_dict(self) -> dict:
        """The settings as recorded with each picture, typed: a plain step count is a number
        (`"steps": 50`), a named respacing stays text (`"ddim50"`, `"fast27"`, `"10,10,3"`);
        `start` only when set, so records made before it existed still match the official
        settings."""
        d = asdict(self)
        d["steps"] = recorded_steps(d["steps"])
        if d["start"] is None:
            del d["start"]
        return d


def recorded_steps(steps):
    """A respacing as records keep it: an int for a plain count (`"50"` → 50; earlier records
    kept the text and are read back through this too), else the respacing's text."""
    return int(steps) if isinstance(steps, str) and steps.strip().isdigit() else steps


BASE_DEFAULTS = StageSettings()
UPSAMPLE_DEFAULTS = StageSettings(steps="fast27", guidance=1.0, init_scale=0.997)


@dataclass(frozen=True)
class Preset:
    """Both stages' sampling plus the precision, by name (`piti sample --fast`). The base's
    guidance scale and normalization stay the user's (`--guidance`, `--normalized`)."""

    base: StageSettings
    upsampler: StageSettings
    precision: str = "auto"  # piti_cli.runtime.resolve_precision: bf16 where it is native


# `--fast`: the preset chosen on the measured speed/quality frontier of the bundled demo models
# (benchmarks/frontier.py; the numbers and the rule: docs/performance.md, "The --fast preset").
FAST = Preset(
    base=StageSettings(sampler="dpmpp-2m", steps="20"),
    upsampler=StageSettings(sampler="dpmpp-2m", steps="10", guidance=1.0, init_scale=0.997),
)


def sampling_settings(*, guidance: float = BASE_DEFAULTS.guidance, normalized: bool = False,
                      sampler: str = BASE_DEFAULTS.sampler, steps: str = BASE_DEFAULTS.steps,
                      upsample_sampler: str = UPSAMPLE_DEFAULTS.sampler, upsample_steps: str = UPSAMPLE_DEFAULTS.steps,
                      upsample_start: int | None = None, eta: float = 0.0,
                      guidance_interval: tuple[float, float] | None = None,
                      fast: bool = False) -> tuple[StageSettings, StageSettings]:
    """Both stages' settings from `piti sample`'s options (the API takes the same): with
    `fast`, `FAST`'s samplers and steps with the caller's guidance, normalization and eta."""
    if fast:
        base = dataclasses.replace(FAST.base, guidance=guidance, normalized=normalized, eta=eta)
        up = dataclasses.replace(FAST.upsampler, eta=eta)
    else:
        base = StageSettings(sampler, str(steps), guidance, normalized, eta, guidance_interval=guidance_interval)
        up = StageSettings(upsample_sampler, str(upsample_steps), 1.0, False, eta, init_scale=UPSAMPLE_DEFAULTS.init_scale)
    return base, up if upsample_start is None else dataclasses.replace(up, start=upsample_start)


def prepare(model: PitiModel, device: torch.device, precision: str, compile: bool = False) -> PitiModel:
    """Move to the device in the compute dtype. Norms still compute in float32 internally.

    fp32 is the faithful path: the model keeps its loaded (contiguous) layout, so a call
    gives the same numbers as the unprepared model. Only bf16 on the CPU goes channels-last,
    where oneDNN's convolutions over few channels run faster (measurements:
    docs/performance.md, `benchmarks/sampling.py`).

    `compile` compiles the network's call with `torch.compile` (the encoder runs once per
    batch and stays eager): on CUDA in `reduce-overhead` mode, which replays the fixed-shape
    per-step call as a captured CUDA graph (batches are padded to one shape, so each stage
    captures once per guided/unguided shape); elsewhere with the default inductor backend.
    The first call of each shape compiles (tens of seconds on a GPU, minutes on a CPU); the
    outputs differ from the eager ones in their last bits (docs/performance.md)."""
    check_precision(precision, device)
    model = model.to(device=device, dtype=PRECISIONS[precision]).eval().requires_grad_(False)
    faster_layout = device.type == "cpu" and precision == "bf16"
    model = model.to(memory_format=torch.channels_last) if faster_layout else model
    if compile:
        model.compile(mode="reduce-overhead" if device.type == "cuda" else None, dynamic=False)
        model.compiled = True
    return model


def _dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def one_row_per_call(model: PitiModel) -> bool:
    """Whether the network sees one batch row per call: on the CPU, except bf16 at 64².

    MKL's fp32 GEMMs and oneDNN's convolutions choose their blocking, and so the order of
    their sums, from the number of rows, so a picture would change in its last bits with the
    batch around it. Called one row at a time, a picture gets the same arithmetic at any
    batch size, in any process; bf16 at 64², where oneDNN's kernels are batch-invariant
    anyway, keeps its batch. CUDA keeps real batches and is not batch-invariant (README,
    reproducibility). The cost of either choice: docs/performance.md;
    tests/pipeline/test_sample_runs.py checks the invariance."""
    p = next(model.parameters())
    if p.device.type != "cpu":
        return False
    return p.dtype == torch.float32 or model.config.unet.image_size > 64


def _rows(fn, x: torch.Tensor, *per_row):
    """``fn`` over the batch, whole or one row per call (`one_row_per_call`)."""
    return torch.cat([fn(x[i:i + 1], *(None if a is None else a[i:i + 1] for a in per_row))
                      for i in range(x.shape[0])])


def encode(model: PitiModel, cond: torch.Tensor) -> ConditionEmbedding:
    """The condition encoder over a batch, one row per call where that keeps pictures
    batch-invariant (`one_row_per_call`)."""
    if not one_row_per_call(model):
        return model.encode(cond)
    return ConditionEmbedding.cat([model.encode(cond[i:i + 1]) for i in range(cond.shape[0])])


def network_denoiser(model: PitiModel, embedding: ConditionEmbedding, low_res: torch.Tensor | None = None):
    """Bind a network to a fixed condition embedding (and low-res image) as a denoiser."""
    dtype = _dtype(model)

    def call(x, t, pooled, tokens, low):
        out = model(x.to(dtype), t, embedding=ConditionEmbedding(pooled, tokens), low_res=low).float()
        # a captured graph's output lives in memory the next replay overwrites: keep a copy
        return out.clone() if model.compiled else out

    rowwise = one_row_per_call(model)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if rowwise:
            return _rows(call, x, t, embedding.pooled, embedding.tokens, low_res)
        return call(x, t, embedding.pooled, embedding.tokens, low_res)

    return denoise


def make_denoiser(model: PitiModel, cond: torch.Tensor, settings: StageSettings, low_res=None):
    """Encode the condition once; with guidance also the null condition, batched together."""
    dtype = _dtype(model)
    cond = cond.to(dtype)
    with torch.no_grad():
        if settings.guidance == 1.0 and not settings.normalized:
            return network_denoiser(model, encode(model, cond), low_res)
        null = model.null_condition(cond.shape[0], cond.device, dtype)
        pair = encode(model, torch.cat([cond, null]))
    pair_low = None if low_res is None else torch.cat([low_res, low_res])
    conditional = None
    if settings.guidance_interval is not None:  # the conditional half of the same encoding, alone
        b = cond.shape[0]
        conditional = network_denoiser(model, ConditionEmbedding(pair.pooled[:b], pair.tokens[:b]), low_res)
    return classifier_free(network_denoiser(model, pair, pair_low), settings.guidance, settings.normalized,
                           settings.guidance_interval, conditional)


def run_sampler(denoiser, process, shape, generator, settings: StageSettings, progress: Progress = None,
                noise: torch.Tensor | None = None, noise_sampler=None, callback=None) -> torch.Tensor:
    """Run ``settings.sampler`` from ``noise`` (x_T) or a fresh draw of ``shape``; ``noise_sampler``
    replaces the generator for the per-step draws, ``callback(step, t, x, x0)`` follows each
    step (see ``diffusion.samplers``)."""
    start = noise if noise is not None else shape
    common = dict(init_scale=settings.init_scale, clip_denoised=settings.clip_denoised, progress=progress,
                  noise_sampler=noise_sampler, callback=callback)
    if settings.sampler not in samplers.SAMPLERS:
        raise ValueError(f"unknown sampler {settings.sampler!r}; choose one of {', '.join(samplers.SAMPLERS)}")
    if settings.sampler in samplers.TAKES_ETA:
        common["eta"] = settings.eta
    return samplers.SAMPLERS[settings.sampler](denoiser, process, start, generator, **common)


def probe_step(model: PitiModel, settings: StageSettings, pictures: int, device, low_size: int):
    """A stage's step for `pictures` blank pictures on `device` (the meta device too), as a
    thunk: the encoder runs now (once a batch, as in sampling), each call is one step's
    denoiser call (guided: condition and null rows together). For measuring a step's memory
    and FLOPs; `low_size` is the upsampler's low-res side."""
    cfg = model.config
    enc, size = cfg.encoder.input_size, cfg.unet.image_size
    cond = torch.zeros(pictures, cfg.encoder.in_channels, enc, enc, device=device)
    low = torch.zeros(pictures, 3, low_size, low_size, device=device) if cfg.unet.in_channels == 6 else None
    x = torch.zeros(pictures, 3, size, size, device=device)
    t = torch.full((pictures,), float(stage_process(model, settings).timestep_map[-1]), device=device)
    with torch.no_grad():
        denoise = make_denoiser(model, cond, settings, low)

    @torch.no_grad()
    def step() -> torch.Tensor:
        return denoise(x, t)

    return step


def step_flops(config, settings: StageSettings, low_size: int) -> int:
    """FLOPs of one picture's step of a stage (`probe_step`), counted on a weightless copy on
    the meta device (nothing is computed), attention as plain matmuls so all of it counts."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):  # only the weights: constants the forward caches stay real
        meta = build_model(config).eval()
    step = probe_step(meta, settings, 1, "meta", low_size)
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        step()
    return counter.get_total_flops()


def step_cost_ratio(base: PitiModel, upsampler: PitiModel | None, base_settings: StageSettings,
                    up_settings: StageSettings) -> float | None:
    """An upsampler step's cost in base steps, per picture: the ratio of their `step_flops`
    (guidance doubles the base's rows). For the time left before the upsampler has been timed."""
    if upsampler is None:
        return None
    base_flops = step_flops(base.config, base_settings, 0)
    up_flops = step_flops(upsampler.config, up_settings, base.config.unet.image_size)
    return up_flops / base_flops if base_flops else None


def stage_process(model: PitiModel, settings: StageSettings):
    """The respaced process a stage walks (only its steps at t ≤ `settings.start` when set)."""
    d = model.config.diffusion
    process = make_process(d.schedule, d.steps, settings.steps)
    return process if settings.start is None else truncate(process, settings.start)


def sample_stage(
    model: PitiModel,
    cond: torch.Tensor,
    settings: StageSettings,
    generator: torch.Generator,
    low_res: torch.Tensor | None = None,
    progress: Progress = None,
    noise: torch.Tensor | None = None,
    noise_sampler=None,
    callback=None,
) -> torch.Tensor:
    """One stage for a batch of conditions (B, C, S, S) → images (B, 3, H, W) in [-1, 1].

    x_T is `noise` (else drawn from `generator`); per-step noise comes from `noise_sampler(x)`
    when given (e.g. `pipeline.noise.RowNoise`, one generator per picture), else `generator`."""
    size = model.config.unet.image_size
    shape = (cond.shape[0], 3, size, size)
    process = stage_process(model, settings)
    if settings.start is not None:
        noise, settings = start_from_low_res(process, low_res, noise, shape, generator, settings)
    denoiser = make_denoiser(model, fit_condition(cond, model.config.encoder.input_size), settings, low_res)
    with torch.no_grad():
        return run_sampler(denoiser, process, shape, generator, settings, progress, noise, noise_sampler, callback)


def start_from_low_res(process, low_res, noise, shape, generator, settings: StageSettings):
    """(x at the truncated process's top step, the settings with init_scale spent): the
    enlarged low-res picture noised to that step, √ᾱ·enlarge(low) + √(1−ᾱ)·init_scale·ε, ε =
    `noise` (else drawn from `generator`)."""
    if low_res is None:
        raise PitiError("a start step needs the upsampler's low-res input")
    eps = noise if noise is not None else torch.randn(shape, generator=generator, device=generator.device)
    eps = eps.to(low_res.device, torch.float32)  # x stays fp32, as pure noise does, whatever the network runs in
    ab = float(process.alphas_cumprod[-1])
    x = ab ** 0.5 * enlarge_low_res(low_res.float(), shape[-2:]) + (1 - ab) ** 0.5 * settings.init_scale * eps
    return x, replace(settings, init_scale=1.0)


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """The official hand-over between stages: to 8 bits by truncation, back to [-1, 1]."""
    return (127.5 * (x.clamp(-1, 1) + 1.0)).int() / 127.5 - 1.0


def sample_cascade(
    base: PitiModel,
    upsampler: PitiModel | None,
    cond: torch.Tensor,
    generator: torch.Generator,
    base_settings: StageSettings = BASE_DEFAULTS,
    upsample_settings: StageSettings = UPSAMPLE_DEFAULTS,
    progress: Progress = None,
    noise=None,
    callback=None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Returns (64-px samples, 256-px samples or None), both in [-1, 1].

    `noise(stage)` ("base", "upsampler") gives a stage's `RowNoise` (x_T and every step's
    noise per picture); without it both stages draw from `generator`. `progress` counts the
    steps of both stages, base first; `callback(stage, step, t, x, x0)` follows every step."""
    base_steps = len(stage_process(base, base_settings).timestep_map)
    up_steps = len(stage_process(upsampler, upsample_settings).timestep_map) if upsampler else 0
    total = base_steps + up_steps

    def run(model, settings, low_res, start, stage):
        rows = noise(stage) if noise is not None else None
        size = model.config.unet.image_size
        x_t = rows.initial((3, size, size), cond.device) if rows is not None else None
        tagged = None if callback is None else (lambda k, t, x, x0: callback(stage, k, t, x, x0))
        return sample_stage(model, cond, settings, generator, low_res, offset(progress, start, total), x_t, rows,
                            tagged)

    low = run(base, base_settings, None, 0, "base")
    if upsampler is None:
        return low, None
    high = run(upsampler, upsample_settings, quantize_8bit(low).to(_dtype(upsampler)), base_steps, "upsampler")
    return low, high
