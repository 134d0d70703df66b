"""Which base model and upsampler a sampling run uses, and the rules that pair them.

The bundled demo base and demo upsampler were trained together on synthetic scenes and are
used only together; a base finetuned from the demo (the demo's architecture, departures
included) counts as a demo base and takes the demo upsampler too. A real base model needs its
own upsampler: without `--upsampler` the run is refused with the registry id to use (by the
base's input kind), or `--base-only`.
"""

from __future__ import annotations

import functools

from piti_cli.checkpoints.convert import load_model
from piti_cli.checkpoints.io import read_checkpoint
from piti_cli.checkpoints.registry import get_entry, resolve, sha256_file
from piti_cli.errors import InputError
from piti_cli.models.piti import PitiModel

# Registry ids of the small models piti ships (used when no checkpoint is given).
DEFAULT_BASE = "piti-demo-base"
DEFAULT_UPSAMPLER = "piti-demo-upsample"
# The official upsampler for a real base model, by the base's input kind.
UPSAMPLER_FOR_KIND = {"mask": "piti-upsample-mask", "sketch": "piti-upsample-sketch"}


def load_stage(spec: str, weights_dir, role: str):
    """(model, {path, sha256, preset}) for a checkpoint path or registry id in `role`."""
    path = resolve(spec, weights_dir)
    model, config = load_model(path)
    if not isinstance(model, PitiModel):
        raise InputError(f"{path}: is a GLIDE text-to-image model; finetune it into a PITI {role} first (`piti finetune`)")
    if config.is_upsampler != (role == "upsampler"):
        raise InputError(f"{path}: is {'an upsampler' if config.is_upsampler else 'a base model'}, expected the {role}")
    return model, {"path": str(path), "sha256": sha256_file(path), "preset": config.name}


def is_demo(info: dict, entry_id: str) -> bool:
    """Whether a loaded file is the bundled demo file `entry_id` (by its sha256)."""
    return info["sha256"] == get_entry(entry_id).sha256


@functools.lru_cache(maxsize=1)
def demo_base_config():
    """The bundled demo base's config (read from its file's metadata)."""
    return read_checkpoint(resolve(DEFAULT_BASE), check_finite=False).config


def load_pair(base: str | None, upsampler: str | None, base_only: bool, weights_dir):
    """(base, base info, upsampler or None, its info or None), paired by the rules above."""
    model, base_info = load_stage(base or DEFAULT_BASE, weights_dir, "base model")
    kind = model.config.input_kind
    if base_only:
        return model, base_info, None, None
    demo_base = is_demo(base_info, DEFAULT_BASE) or model.config == demo_base_config()  # or finetuned from it
    if upsampler is None and not demo_base:
        hint = UPSAMPLER_FOR_KIND.get(kind)
        use = f"--upsampler {hint}" if hint else f"--upsampler PATH (an upsampler for {kind} inputs)"
        raise InputError(f"{base_info['path']}: a real base model needs its own upsampler (the bundled demo "
                         f"upsampler only fits the demo base); add {use}, or --base-only for 64-px pictures")
    up, up_info = load_stage(upsampler or DEFAULT_UPSAMPLER, weights_dir, "upsampler")
    if demo_base != is_demo(up_info, DEFAULT_UPSAMPLER):
        demo, other = (base_info, up_info) if demo_base else (up_info, base_info)
        raise InputError(f"{other['path']}: the bundled demo model {demo['path']} is used only with its demo "
                         f"{'upsampler' if demo_base else 'base'}; give both real checkpoints, or neither")
    if up.config.input_kind != kind:
        raise InputError(f"{up_info['path']}: upsampler takes {up.config.input_kind}, base takes {kind}")
    return model, base_info, up, up_info
