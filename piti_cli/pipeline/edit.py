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
from piti_cli.errors import InputError
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image under `cond`, image under `edited_cond`), both from the same x_T.

    `noise` is x_T (e.g. from `invert`, then sampled without clipping, as it was inverted);
    without it one is drawn from `generator`. `progress(done, total)` counts both runs' steps
    (of `total` when the caller counts more work after them).
    """
    settings = ddim_settings(settings)
    if noise is not None:
        settings = replace(settings, clip_denoised=False)
    size = model.config.unet.image_size
    if noise is None:
        noise = torch.randn((cond.shape[0], 3, size, size), generator=generator, device=generator.device)
    steps = len(stage_process(model, settings).timestep_map)  # one count over both runs
    total = total or 2 * steps
    original = sample_stage(model, cond, settings, generator, noise=noise, progress=offset(progress, 0, total))
    edited = sample_stage(model, edited_cond, settings, generator, noise=noise, progress=offset(progress, steps, total))
    return original, edited


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
) -> list:
    """Write original.png and edited.png (256 px with an upsampler, else 64 px) into `out`.

    With `image_path`, x_T comes from DDIM inversion of that photo under `cond_path`, and
    reconstruction.png shows how faithfully the inversion regenerates it. The photo is
    PIL-BICUBIC-resized as uint8 to the base model's size, as training pictures are. The
    checkpoints pair as in `piti sample` (`pipeline.models.load_pair`): a real base needs its
    upsampler, or `base_only` for 64-px pictures."""
    out = Path(out)
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
                           photo, settings, seed, progress)
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
                  photo: torch.Tensor | None, settings: StageSettings, seed: int, progress=None) -> dict[str, torch.Tensor]:
    """{"original" (or "reconstruction" with a photo), "edited"}: (1, 3, S, S) in [-1, 1], S the
    upsampler's size when there is one. `cond_a` / `cond_b` (1, C, 256, 256) on the models'
    device; `photo` (1, 3, s, s) at the base's size or None (then x_T is drawn from `seed`)."""
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
    images = dict(zip(("original", "edited"), edit(model, cond_a, cond_b, settings, generator, noise, sampling, total)))
    if photo is not None:
        images["reconstruction"] = images.pop("original")  # the photo regenerated from its x_T
    if up is None:
        return images
    up_noise = torch.randn((1, 3, up.config.unet.image_size, up.config.unet.image_size),
                           generator=torch.Generator(dev).manual_seed(seed + 1), device=dev)
    conds = {"original": cond_a, "edited": cond_b, "reconstruction": cond_a}
    dtype = next(up.parameters()).dtype
    return {name: sample_stage(up, conds[name], up_settings, generator, quantize_8bit(img).to(dtype), noise=up_noise,
                               progress=offset(progress, runs * steps + k * up_steps, total))
            for k, (name, img) in enumerate(images.items())}
