"""What is in a checkpoint file: closest preset, parameter count, differences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from piti_cli.checkpoints.io import non_finite_tensors, read_checkpoint
from piti_cli.checkpoints.layout import LayoutDiff, closest_preset, compare, config_layout, diff_layouts, encoder_only, layout_of
from piti_cli.errors import PitiError
from piti_cli.models.config import PRESETS


@dataclass(frozen=True)
class InspectReport:
    diff: LayoutDiff
    tensors: int
    parameters: int
    dtypes: tuple[str, ...]
    description: str
    stored_config: str | None
    non_finite: tuple[str, ...] = ()  # tensors holding NaN/Inf: the file is unusable
    departures: tuple[str, ...] = ()  # "unet.grid_attention=True": where the stored config leaves its preset

    @property
    def usable(self) -> bool:
        return not self.non_finite


def inspect_checkpoint(path: str | Path) -> InspectReport:
    """What the file holds. NaN/Inf tensors do not stop the inspection (it says which); every
    other reader refuses such a file."""
    ck = read_checkpoint(path, check_finite=False)
    layout = layout_of(ck.state_dict)
    if ck.config and _is_preset(ck.config.name):  # its own config, departures included, is the reference
        diff = diff_layouts(layout, config_layout(ck.config), ck.config.name)
    else:
        diff = closest_preset(layout)
    if encoder_only(layout):
        description = "stage-1 file: condition encoder only (decoder comes from GLIDE)"
    elif diff.preset.startswith("glide"):
        description = "GLIDE text-to-image model (piti drops the text side)"
    else:
        description = "PITI model (condition encoder + GLIDE decoder)"
    return InspectReport(
        diff=diff,
        tensors=len(layout),
        parameters=sum(v.numel() for v in ck.state_dict.values()),
        dtypes=tuple(sorted({str(v.dtype).removeprefix("torch.") for v in ck.state_dict.values()})),
        description=description,
        stored_config=ck.config.name if ck.config else None,
        non_finite=tuple(non_finite_tensors(ck.state_dict)),
        departures=departures(ck.config) if ck.config else (),
    )


def departures(config) -> tuple[str, ...]:
    """`part.field=value` for every field where `config` differs from the preset it names
    (e.g. the demo's `unet.grid_attention=True`); () for a preset itself or an unknown name."""
    preset = PRESETS.get(config.name)
    if preset is None:
        return ()
    mine, theirs = config.to_dict(), preset.to_dict()
    found = []
    for part, values in mine.items():
        if isinstance(values, dict) and isinstance(theirs.get(part), dict):
            found += [f"{part}.{k}={v}" for k, v in values.items() if theirs[part].get(k) != v]
    return tuple(found)


def _is_preset(name: str) -> bool:
    return name in PRESETS


def layout_problem(path: str | Path, preset: str) -> str | None:
    """Why the file at `path` is not a usable `preset` checkpoint (unreadable, NaN/Inf, other
    layout), or None when it loads and has exactly the preset's tensors. For files whose
    registry entry has no size or sha256 to compare."""
    try:
        ck = read_checkpoint(path)
    except PitiError as err:
        return str(err)
    diff = compare(layout_of(ck.state_dict), preset)
    return None if diff.exact else f"{path}: not the {preset} layout ({diff.summary()})"
