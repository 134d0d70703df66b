"""Which preset a state dict is: tensor-name/shape comparison against every preset.

Layouts are computed on the meta device, so comparing against the 400 M-parameter presets
costs no memory.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from piti_cli.models.config import PRESETS
from piti_cli.models.piti import build_model

Layout = dict[str, tuple[int, ...]]

# GLIDE's text side, which PITI drops (everything else maps to `decoder.<name>`).
GLIDE_TEXT_PREFIXES = ("token_embedding.", "transformer.", "final_ln.")
GLIDE_TEXT_NAMES = ("positional_embedding", "padding_embedding")


def is_glide_text_key(name: str) -> bool:
    return name in GLIDE_TEXT_NAMES or name.startswith(GLIDE_TEXT_PREFIXES)


@dataclass(frozen=True)
class LayoutDiff:
    preset: str
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[str, ...]

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def errors(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mismatched)

    def summary(self) -> str:
        return (f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.mismatched)} mis-shaped tensor{'' if len(self.mismatched) == 1 else 's'}")


def layout_of(state: dict[str, torch.Tensor]) -> Layout:
    return {k: tuple(v.shape) for k, v in state.items()}


def config_layout(config) -> Layout:
    """The tensor shapes a model of `config` holds (departures from its preset included)."""
    with torch.device("meta"):
        model = build_model(config)
    return layout_of(model.state_dict())


@functools.lru_cache(maxsize=None)
def preset_layout(name: str) -> Layout:
    return config_layout(PRESETS[name])


def diff_layouts(layout: Layout, expected: Layout, name: str = "") -> LayoutDiff:
    return LayoutDiff(
        name,
        missing=tuple(sorted(set(expected) - set(layout))),
        unexpected=tuple(sorted(set(layout) - set(expected))),
        mismatched=tuple(sorted(k for k in set(layout) & set(expected) if layout[k] != expected[k])),
    )


def compare(layout: Layout, preset: str) -> LayoutDiff:
    return diff_layouts(layout, preset_layout(preset), preset)


def closest_preset(layout: Layout, candidates: list[str] | None = None) -> LayoutDiff:
    """The preset with the fewest differences (exact match first)."""
    names = candidates or list(PRESETS)
    # A cheap pre-filter on name overlap avoids building every preset for a clear match.
    keys = set(layout)
    scored = sorted(names, key=lambda n: -len(keys & set(preset_layout(n))))
    diffs = [compare(layout, n) for n in scored[:6]]
    return min(diffs, key=lambda d: (d.errors, d.preset))


def encoder_only(layout: Layout) -> bool:
    """A stage-1 file of the official code: condition-encoder tensors only."""
    return bool(layout) and all(k.startswith("encoder.") for k in layout)


def key_mismatch(state: dict, expected: dict, prefix: str = "") -> str:
    """'' when `state` has exactly the keys and shapes of `expected`, else what differs:
    '3 missing (e.g. a.b), 1 unexpected (e.g. c)' or 'a.b has shape (2,), expected (3,)'."""
    diff = diff_layouts(layout_of(state), layout_of(expected))
    detail = [f"{len(keys)} {what} (e.g. {prefix}{keys[0]})" for what, keys in
              (("missing", diff.missing), ("unexpected", diff.unexpected)) if keys]
    if detail:
        return ", ".join(detail)
    if diff.mismatched:
        key = diff.mismatched[0]
        return f"{prefix}{key} has shape {tuple(state[key].shape)}, expected {tuple(expected[key].shape)}"
    return ""
