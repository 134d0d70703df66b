"""piti's Python API: load a base model and its upsampler once, then turn conditions into pictures.

    from piti_cli import PitiPipeline

    pipe = PitiPipeline.from_pretrained()                 # the bundled demo pair
    out = pipe("examples/mask/scene_0.png", guidance_scale=8, num_inference_steps=50, upsample_start=300)
    out.images[0].save("scene_0.png")
    edits = pipe.edit("examples/mask/scene_0.png", edited_mask)  # {"original", "edited"}: PIL


Names follow diffusers where they mean the same: `guidance_scale`, `num_inference_steps` (the
base's respacing: an int, or piti's strings such as "ddim50"), `num_images_per_prompt`; the
seed is an int (`seed`) rather than a `torch.Generator`, because each picture draws from its
own generators derived from (seed, condition name, sample index) — what makes a picture the
same at any batch size and through `piti sample` (same seed, same name → the same bytes).
A condition is a file path, a PIL image or an array (a colour mask H × W × 3 uint8, a sketch,
or an already prepared float (C, 256, 256) in [-1, 1]); a picture input is named after its
file's stem, any other after its position (`condition_0`, …). Every user-facing failure is a
`piti_cli.errors.PitiError` (`InputError`, `CheckpointError`) with the CLI's one-line message.

`callback(info)` follows every network step with a `StepInfo` (stage, step, total, t, x, x̂₀:
k-diffusion's callback, tagged with the stage), so a caller can draw progress or previews;
`cancel()` is asked after every step and stops the call with `Cancelled`. The prep steps and
the metrics are plain functions here too: `colour_mask`, `sketch_from_photo`, `fid`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from piti_cli.data.images import read_image, to_uint8
from piti_cli.data.kinds import get_kind
from piti_cli.errors import InputError
from piti_cli.pipeline.batching import auto_rows
from piti_cli.pipeline.cascade import (
    BASE_DEFAULTS, UPSAMPLE_DEFAULTS, StageSettings, prepare, sampling_settings, stage_process,
)
from piti_cli.pipeline.edit import edit_pictures, photo_input
from piti_cli.pipeline.inputs import condition_digest
from piti_cli.pipeline.models import load_pair
from piti_cli.pipeline.sample import picture_record, sample_batch
from piti_cli.runtime import resolve_device, resolve_precision

ConditionLike = str | Path | Image.Image | np.ndarray


@dataclass(frozen=True)
class StepInfo:
    """What `callback` gets after each network step of a batch."""

    stage: str  # "base" or "upsampler" (the edit's runs: "edit")
    step: int  # steps done in this stage and batch, 1..total
    total: int  # the stage's steps
    t: int  # the original timestep (0..999) the step started from
    x: torch.Tensor | None  # the batch's new state x_{t-1}, (B, 3, S, S) (None in an edit's count)
    x0: torch.Tensor | None  # the x̂₀ the step used, in [-1, 1]
    first: int  # index (in the call's output) of the batch's first picture

    def preview(self) -> list[Image.Image]:
        """x̂₀ of each picture of the batch as PIL images (a preview while sampling)."""
        return [] if self.x0 is None else [_pil(p.float().clamp(-1, 1)) for p in self.x0]


Callback = Callable[[StepInfo], None]


class Cancelled(InputError):
    """Raised between steps when `cancel()` returned True: nothing was returned or written."""


@dataclass
class PitiOutput:
    images: list[Image.Image]  # the final pictures (256 px; 64 px without an upsampler)
    low_res: list[Image.Image]  # the base's 64-px pictures
    records: list[dict[str, Any]] = field(default_factory=list)  # each picture's settings (its PNG's `piti` chunk)


class PitiPipeline:
    """A loaded base + upsampler pair on one device in one precision; call it many times."""

    def __init__(self, base, base_info: dict, upsampler, up_info: dict | None, device: torch.device, precision: str):
        self.base, self.base_info, self.upsampler, self.up_info = base, base_info, upsampler, up_info
        self.device, self.precision = device, precision

    @classmethod
    def from_pretrained(cls, base: str | None = None, upsampler: str | None = None, *, base_only: bool = False,
                        device: str = "auto", precision: str = "auto", weights_dir: str | None = None,
                        compile: bool = False) -> "PitiPipeline":
        """Load once: `base` / `upsampler` are paths or registry ids (default: the bundled demo
        pair); `precision` is auto | fp32 (the faithful path) | bf16 | fp16 (`torch_dtype` in
        diffusers' terms); `compile` is `piti sample --compile`; the pairing rules are
        `piti sample`'s."""
        dev = resolve_device(device)
        chosen = resolve_precision(precision, dev)
        b, b_info, u, u_info = load_pair(base, upsampler, base_only, weights_dir)
        return cls(prepare(b, dev, chosen, compile), b_info, prepare(u, dev, chosen, compile) if u is not None else None,
                   u_info, dev, chosen)

    @property
    def input_kind(self) -> str:
        return self.base.config.input_kind

    def settings(self, *, guidance_scale: float = BASE_DEFAULTS.guidance, normalized: bool = False,
                 sampler: str = BASE_DEFAULTS.sampler, num_inference_steps: int | str = BASE_DEFAULTS.steps,
                 upsample_sampler: str = UPSAMPLE_DEFAULTS.sampler, upsample_steps: int | str = UPSAMPLE_DEFAULTS.steps,
                 upsample_start: int | None = None, eta: float = 0.0, fast: bool = False
                 ) -> tuple[StageSettings, StageSettings]:
        """Both stages' settings as `piti sample` builds them from the same options."""
        return sampling_settings(guidance=guidance_scale, normalized=normalized, sampler=sampler,
                                 steps=str(num_inference_steps), upsample_sampler=upsample_sampler,
                                 upsample_steps=str(upsample_steps), upsample_start=upsample_start, eta=eta, fast=fast)

    def __call__(self, conditions: ConditionLike | Sequence[ConditionLike], *, seed: int = 0,
                 num_images_per_prompt: int = 1, batch_size: int | None = None, callback: Callback | None = None,
                 cancel: Callable[[], bool] | None = None, **settings) -> PitiOutput:
        """Pictures for `conditions` (one or a list); `settings` are those of `settings()`.
        `callback(StepInfo)` follows every step; `cancel()` is asked between steps."""
        base_settings, up_settings = self.settings(**settings)
        named = self._read(conditions)
        pictures = [(name, array, k) for name, array in named for k in range(num_images_per_prompt)]
        rows = (max(1, min(batch_size, len(pictures))) if batch_size else
                auto_rows(self.base, self.upsampler, base_settings, up_settings, self.device, len(pictures)))
        images, lows, records = [], [], []
        size = self.base.config.encoder.input_size
        totals = {"base": self._steps(self.base, base_settings), "upsampler": self._steps(self.upsampler, up_settings)}
        for start in range(0, len(pictures), rows):
            batch = pictures[start:start + rows]
            keys = [(name, k) for name, _, k in batch]
            conds = [array for _, array, _ in batch]
            low, high = sample_batch(self.base, self.upsampler, conds, keys, rows, size, self.device, seed,
                                     base_settings, up_settings,
                                     callback=_stepper(callback, cancel, totals, start, len(batch)))
            for i, (name, array, k) in enumerate(batch):
                lows.append(_pil(low[i]))
                images.append(_pil(high[i]) if high is not None else lows[-1])
                records.append(picture_record(name, condition_digest(array), k, seed, self.precision, self.base_info,
                                              self.up_info, base_settings, up_settings, self.device.type))
        return PitiOutput(images, lows, records)

    def edit(self, condition: ConditionLike, edited: ConditionLike, *, photo: ConditionLike | None = None,
             seed: int = 0, guidance_scale: float = 1.0, normalized: bool = False,
             num_inference_steps: int | str = "ddim50", keep_rest: bool = True, callback: Callback | None = None,
             cancel: Callable[[], bool] | None = None) -> dict[str, Image.Image]:
        """`piti edit`: {"original" (with a `photo`: "reconstruction"), "edited"} as PIL images,
        both sampled with deterministic DDIM from one x_T (from `seed`, or the DDIM inversion of
        `photo` under `condition`); with `keep_rest` (`piti edit`'s default) the picture outside
        the changed part of the condition stays exactly (blended DDIM)."""
        settings = StageSettings(sampler="ddim", steps=str(num_inference_steps), guidance=guidance_scale,
                                 normalized=normalized)
        (_, a), (_, b) = self._read([condition, edited], check_names=False)
        picture = None
        if photo is not None:
            picture = photo_input(_photo(photo), self.base, _name(photo, 0))
        as_input = lambda array: torch.from_numpy(array)[None].to(self.device)  # noqa: E731

        def progress(done: int, total: int) -> None:
            if callback is not None:
                callback(StepInfo("edit", done, total, -1, None, None, 0))
            if cancel is not None and cancel():
                raise Cancelled("editing cancelled")
        pictures = edit_pictures(self.base, self.upsampler, as_input(a), as_input(b), picture, settings, seed,
                                 progress if callback is not None or cancel is not None else None, keep_rest)
        return {name: _pil(p[0]) for name, p in pictures.items()}

    def stage_steps(self, **settings) -> dict[str, int]:
        """Network steps per stage ("base", "upsampler") a call with `settings` takes."""
        base_settings, up_settings = self.settings(**settings)
        return {"base": self._steps(self.base, base_settings), "upsampler": self._steps(self.upsampler, up_settings)}

    @staticmethod
    def _steps(model, settings: StageSettings) -> int:
        return 0 if model is None else len(stage_process(model, settings).timestep_map)

    def _read(self, conditions, check_names: bool = True) -> list[tuple[str, np.ndarray]]:
        items = list(conditions) if isinstance(conditions, (list, tuple)) else [conditions]
        if not items:
            raise InputError("no conditions given")
        out = [(_name(item, i), read_condition(item, self.input_kind)) for i, item in enumerate(items)]
        names = [n for n, _ in out]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice and check_names:
            raise InputError(f"{twice[0]}: two conditions have this name and would draw the same noise; rename one")
        return out


def read_condition(item: ConditionLike, kind: str) -> np.ndarray:
    """float32 (C, 256, 256) in [-1, 1], read exactly as `piti sample` reads a file of `kind`
    (a PIL image or a uint8 array goes through the same reader, via a PNG)."""
    reader = get_kind(kind)
    if isinstance(item, (str, Path)):
        path = Path(item)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        array = reader.read(path)
    elif isinstance(item, np.ndarray) and item.dtype != np.uint8:
        array = np.asarray(item, dtype=np.float32)
        if array.ndim != 3 or array.shape[1:] != (256, 256) or array.shape[0] != reader.channels:
            raise InputError(f"a prepared {kind} condition is ({reader.channels}, 256, 256), got {array.shape}")
    else:
        picture = item if isinstance(item, Image.Image) else Image.fromarray(np.asarray(item))
        with tempfile.TemporaryDirectory(prefix="piti-api-") as folder:
            path = Path(folder) / "condition.png"
            picture.save(path, format="PNG")
            array = reader.read(path)
    if not np.isfinite(array).all():
        raise InputError("the condition holds non-finite values (NaN/Inf)")
    return array


def _stepper(callback: Callback | None, cancel: Callable[[], bool] | None, totals: dict, first: int, n: int):
    """The cascade's callback(stage, step, t, x, x0) as `callback(StepInfo)` on the batch's real
    rows, then `cancel()`."""
    if callback is None and cancel is None:
        return None

    def step(stage: str, k: int, t: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        if callback is not None:
            callback(StepInfo(stage, k + 1, totals[stage], t, x[:n], x0[:n], first))
        if cancel is not None and cancel():
            raise Cancelled("sampling cancelled")
    return step


def colour_mask(labels: np.ndarray, dataset: str = "coco-stuff") -> Image.Image:
    """`piti prep masks` for one label map (H, W) of class ids: the colour mask the models read."""
    from piti_cli.data_prep.masks import labels_to_color

    return Image.fromarray(labels_to_color(np.asarray(labels), dataset))


def sketch_from_photo(photo: ConditionLike, *, backend: str = "hed", weights: str = "auto", device: str = "auto",
                      threshold: float = 0.6) -> Image.Image:
    """`piti prep hed` for one photo: 256² bicubic squash, HED, p > threshold; white edges on black."""
    from piti_cli.data_prep.sketches import sketch_batch

    arr = _photo(photo)
    if arr.ndim != 3 or arr.shape[2] < 3 or arr.dtype != np.uint8:
        raise InputError(f"{_name(photo, 0)}: a photo is an RGB image (H × W × 3 uint8)")
    return Image.fromarray(sketch_batch(arr[None, ..., :3], backend, weights, device, threshold)[0])


def fid(generated: str | Path, reference: str | Path, *, features: str = "inception", device: str = "auto",
        num: int | None = None, kid: bool = False, weights_dir: str | None = None) -> dict:
    """`piti eval fid` between two folders / packs (or a reference statistics file): the result
    dict (FID, and KID with `kid`, per feature network: "inception", "clip" or "both")."""
    from piti_cli.metrics.features import build_extractor
    from piti_cli.metrics.fid import evaluate_fid

    kinds = {"inception": ["inception"], "clip": ["clip"], "both": ["inception", "clip"]}.get(features)
    if kinds is None:
        raise InputError(f"features={features!r}: choose inception, clip or both")
    dev = resolve_device(device)
    return evaluate_fid(generated, reference, [build_extractor(k, dev, None, weights_dir) for k in kinds], num=num, kid=kid)


def _photo(item: ConditionLike) -> np.ndarray:
    """A photo as `piti prep hed` / `piti edit --image` read it (a path through `read_image`)."""
    if isinstance(item, (str, Path)):
        if not Path(item).is_file():
            raise InputError(f"{item}: no such file")
        return read_image(Path(item), "RGB")
    return np.asarray(item.convert("RGB") if isinstance(item, Image.Image) else item)


def _name(item: ConditionLike, index: int) -> str:
    return Path(item).stem if isinstance(item, (str, Path)) else f"condition_{index}"


def _pil(picture: torch.Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(picture))
