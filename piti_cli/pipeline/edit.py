"""Image manipulation (paper appendix): DDIM with the noise held fixed.

Two conditions sampled from the same x_T with deterministic DDIM give images that agree
wherever the conditions agree, so editing a mask edits only the edited region. A real photo
enters the same way: DDIM inversion under its condition gives the x_T that regenerates it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from piti_cli.data.images import fit_condition, read_image, resize_bicubic, save_png, to_uint8, to_unit
from piti_cli.diffusion.samplers import ddim_invert
from piti_cli.diffusion.steps import ddim_step
from piti_cli.errors import InputError
from piti_cli.io_utils import keep_inputs
from piti_cli.models.piti import PitiModel
from piti_cli.pipeline.cascade import (
    UPSAMPLE_DEFAULTS,
    StageSettings,
    make_denoiser,
    prepare,
    quantize_8bit,
    sample_stage,
    stage_process,
)
from piti_cli.pipeline.inputs import load_conditions
from piti_cli.pipeline.progress import offset
from piti_cli.pipeline.models import load_pair
from piti_cli.runtime import resolve_device, resolve_precision


def ddim_settings(settings: StageSettings) -> StageSettings:
    """Editing needs a deterministic map noise ↔ image: DDIM with eta = 0."""
    return replace(settings, sampler="ddim", eta=0.0)


def invert(model: PitiModel, image: torch.Tensor, cond: torch.Tensor, settings: StageSettings, progress=None) -> torch.Tensor:
    """x_T that DDIM maps back to `image` (B, 3, S, S) in [-1, 1], S the model's size, under `cond`."""
    size = model.config.unet.image_size
    if image.shape[-2:] != (size, size):
        raise ValueError(f"invert takes pictures at the model's size {size}, got {tuple(image.shape[-2:])}")
    # No x0 clipping in either direction: clipping makes the DDIM map non-invertible.
    settings = replace(ddim_settings(settings), clip_denoised=False)
    denoiser = make_denoiser(model, fit_condition(cond, model.config.encoder.input_size), settings)
    with torch.no_grad():
        return ddim_invert(denoiser, stage_process(model, settings), image.float(), clip_denoised=False, progress=progress)


def edit(
    model: PitiModel,
    cond: torch.Tensor,
    edited_cond: torch.Tensor,
    settings: StageSettings,
    generator: torch.Generator,
    noise: torch.Tensor | None = None,
    progress=None,
    total: int | None = None,
    keep: torch.Tensor | None = None,
    low_res: tuple[torch.Tensor, torch.Tensor] | None = None,
    clip: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image under `cond`, image under `edited_cond`), both by deterministic DDIM from one x_T.

    `noise` is x_T (e.g. from `invert`, then sampled without clipping, as it was inverted,
    unless `clip` says otherwise); without it one is drawn from `generator`. `progress(done,
    total)` counts both runs' steps (of `total` when the caller counts more work after them).
    `low_res` is the upsampler's (original, edited) 64-px input pair.

    Without `keep` this is the paper's edit: two independent runs from one x_T, so whatever the
    edit does not reach keeps its content only as far as the network's reading of the whole
    condition allows. With `keep` (B, 1, S, S), 1 where the picture must stay, the edited run
    takes the original run's state there after every step (blended DDIM): the two runs go in
    lock step, the original one is unchanged, and the edited picture equals it wherever
    `keep` is 1.
    """
    settings = ddim_settings(settings)
    if clip is None:
        clip = noise is None
    settings = replace(settings, clip_denoised=clip)
    size = model.config.unet.image_size
    if noise is None:
        noise = torch.randn((cond.shape[0], 3, size, size), generator=generator, device=generator.device)
    process = stage_process(model, settings)
    steps = process.num_timesteps  # one count over both runs
    total = total or 2 * steps
    low_a, low_b = low_res if low_res is not None else (None, None)
    if keep is None:
        original = sample_stage(model, cond, settings, generator, low_a, offset(progress, 0, total), noise)
        edited = sample_stage(model, edited_cond, settings, generator, low_b, offset(progress, steps, total), noise)
        return original, edited
    enc = model.config.encoder.input_size
    den_a = make_denoiser(model, fit_condition(cond, enc), settings, low_a)
    den_b = make_denoiser(model, fit_condition(edited_cond, enc), settings, low_b)
    keep = keep.to(noise.dtype)
    xa = xb = noise * settings.init_scale if settings.init_scale != 1.0 else noise  # as the samplers start
    with torch.no_grad():
        for k, i in enumerate(range(steps - 1, -1, -1)):
            xa = ddim_step(den_a, process, xa, i, eta=0.0, clip_denoised=settings.clip_denoised).x
            xb = ddim_step(den_b, process, xb, i, eta=0.0, clip_denoised=settings.clip_denoised).x
            xb = keep * xa + (1 - keep) * xb
            if progress is not None:
                progress(2 * (k + 1), total)
    return xa, xb


def changed_region(cond: torch.Tensor, edited_cond: torch.Tensor, size: int, grow: int = 1) -> torch.Tensor:
    """(B, 1, size, size): 1 on every pixel of a size² picture whose block of the 256² conditions
    differs in any channel, grown by `grow` pixels (room to blend at the seam)."""
    diff = (cond != edited_cond).any(dim=1, keepdim=True).float()
    region = torch.nn.functional.adaptive_max_pool2d(diff, size)
    if grow:
        region = torch.nn.functional.max_pool2d(region, 2 * grow + 1, stride=1, padding=grow)
    return region


def run_edit(
    cond_path: str,
    edited_path: str,
    out,
    base: str | None = None,
    upsampler: str | None = None,
    image_path: str | None = None,
    settings: StageSettings = StageSettings(sampler="ddim", steps="ddim50", guidance=1.0),
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    weights_dir: str | None = None,
    progress=None,
    base_only: bool = False,
    keep_rest: bool = True,
) -> list:
    """Write original.png and edited.png (256 px with an upsampler, else 64 px) into `out`.

    With `image_path`, x_T comes from DDIM inversion of that photo under `cond_path`, and
    reconstruction.png shows how faithfully the inversion regenerates it. The photo is
    PIL-BICUBIC-resized as uint8 to the base model's size, as training pictures are. The
    checkpoints pair as in `piti sample` (`pipeline.models.load_pair`): a real base needs its
    upsampler, or `base_only` for 64-px pictures."""
    out = Path(out)
    for option, path in (("--cond", cond_path), ("--edited", edited_path)):
        if Path(path).is_dir():
            raise InputError(f"{option} {path}: a folder; give one condition file")
    keep_inputs(out, {"--cond": cond_path, "--edited": edited_path, "--image": image_path})
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)  # "auto" as `piti sample` resolves it
    model, _, up, _ = load_pair(base, upsampler, base_only, weights_dir)  # `piti sample`'s pairing rule
    kind = model.config.input_kind
    (a,), (b,) = load_conditions(cond_path, kind, 1), load_conditions(edited_path, kind, 1)
    photo = photo_input(read_image(Path(image_path)), model, image_path) if image_path else None
    if up is not None:
        up = prepare(up, dev, precision)
    model = prepare(model, dev, precision)
    images = edit_pictures(model, up, torch.from_numpy(a.read())[None].to(dev), torch.from_numpy(b.read())[None].to(dev),
                           photo, settings, seed, progress, keep_rest)
    written = []
    for name, img in images.items():
        path = out / f"{name}.png"
        save_png(to_uint8(img[0]), path)
        written.append(path)
    return written


def photo_input(arr, model: PitiModel, name: str) -> torch.Tensor:
    """A photo (H, W, ≥3) uint8 as the base sees it: PIL-BICUBIC-resized as uint8 to its size,
    as training pictures are; (1, 3, S, S) in [-1, 1]."""
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise InputError(f"{name}: the photo must be an RGB image")
    return torch.from_numpy(to_unit(resize_bicubic(arr[..., :3].copy(), model.config.unet.image_size)))[None]


def edit_pictures(model: PitiModel, up: PitiModel | None, cond_a: torch.Tensor, cond_b: torch.Tensor,
                  photo: torch.Tensor | None, settings: StageSettings, seed: int, progress=None,
                  keep_rest: bool = True) -> dict[str, torch.Tensor]:
    """{"original" (or "reconstruction" with a photo), "edited"}: (1, 3, S, S) in [-1, 1], S the
    upsampler's size when there is one. `cond_a` / `cond_b` (1, C, 256, 256) on the models'
    device; `photo` (1, 3, s, s) at the base's size or None (then x_T is drawn from `seed`).
    `keep_rest`: blended DDIM in both stages (`edit`'s `keep`: outside the conditions' changed
    region the edited picture is the original); False: the paper's two free runs."""
    dev = cond_a.device
    generator = torch.Generator(dev).manual_seed(seed)
    steps = len(stage_process(model, ddim_settings(settings)).timestep_map)
    runs = 3 if photo is not None else 2  # (inversion,) original, edited
    # The same upsampler noise for every image, so differences come from the 64-px stage only.
    up_settings = replace(UPSAMPLE_DEFAULTS, sampler="ddim", steps="ddim25")
    up_steps = 0 if up is None else len(stage_process(up, up_settings).timestep_map)
    total = runs * steps + 2 * up_steps  # one progress count over every network step
    noise = invert(model, photo.to(dev), cond_a, settings, offset(progress, 0, total)) if photo is not None else None
    sampling = offset(progress, (runs - 2) * steps, total)
    keep = (1 - changed_region(cond_a, cond_b, model.config.unet.image_size)) if keep_rest else None
    images = dict(zip(("original", "edited"),
                      edit(model, cond_a, cond_b, settings, generator, noise, sampling, total, keep)))
    if photo is not None:
        images["reconstruction"] = images.pop("original")  # the photo regenerated from its x_T
    if up is None:
        return images
    up_noise = torch.randn((1, 3, up.config.unet.image_size, up.config.unet.image_size),
                           generator=torch.Generator(dev).manual_seed(seed + 1), device=dev)
    dtype = next(up.parameters()).dtype
    first = "reconstruction" if photo is not None else "original"
    lows = (quantize_8bit(images[first]).to(dtype), quantize_8bit(images["edited"]).to(dtype))
    up_keep = (1 - changed_region(cond_a, cond_b, up.config.unet.image_size, grow=4)) if keep_rest else None
    high = edit(up, cond_a, cond_b, up_settings, generator, up_noise, offset(progress, runs * steps, total),
                total, up_keep, lows, clip=True)
    return {first: high[0], "edited": high[1]}
