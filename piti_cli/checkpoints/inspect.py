"""What is in a checkpoint file: closest preset, parameter count, differences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from piti_cli.checkpoints.io import read_checkpoint
from piti_cli.checkpoints.layout import LayoutDiff, closest_preset, compare, encoder_only, layout_of


@dataclass(frozen=True)
class InspectReport:
    diff: LayoutDiff
    tensors: int
    parameters: int
    dtypes: tuple[str, ...]
    description: str
    stored_config: str | None


def inspect_checkpoint(path: str | Path) -> InspectReport:
    ck = read_checkpoint(path)
    layout = layout_of(ck.state_dict)
    diff = compare(layout, ck.config.name) if ck.config and _is_preset(ck.config.name) else closest_preset(layout)
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
    )


def _is_preset(name: str) -> bool:
    from piti_cli.models.config import PRESETS

    return name in PRESETS
