"""Loading a checkpoint into a model, and GLIDE → PITI initialisation.

GLIDE → PITI (paper §3.2): every GLIDE tensor except the text side becomes `decoder.<name>`
(`transformer_proj` included); the condition encoder is new. Stage-1 files of the official
code hold only `encoder.*`: their decoder comes from GLIDE.
"""

from __future__ import annotations

from pathlib import Path

import torch

from piti_cli.checkpoints.io import CheckpointFile, read_checkpoint
from piti_cli.checkpoints.layout import (
    closest_preset,
    compare,
    encoder_only,
    is_glide_text_key,
    layout_of,
)
from piti_cli.data.kinds import kind_for_channels
from piti_cli.errors import CheckpointError
from piti_cli.models.config import PRESETS, EncoderConfig, ModelConfig, get_preset, piti_from_glide
from piti_cli.models.encoder import ConditionEncoder
from piti_cli.models.piti import build_model


def identify(ck: CheckpointFile, preset: str | None = None) -> ModelConfig:
    """The config a file was written for: stored in it, asked for, or its exact layout match."""
    layout = layout_of(ck.state_dict)
    if ck.config is not None and preset is None:
        config = ck.config
        diff = compare_config(layout, config)
        if diff:
            raise CheckpointError(f"{ck.path}: tensors do not fit the config stored in it ({diff})")
        return config
    if preset is not None:
        config = get_preset(preset)
        diff = compare(layout, config.name)
        if not diff.exact:
            best = closest_preset(layout)
            raise CheckpointError(
                f"{ck.path}: does not fit preset {config.name} ({diff.summary()}); "
                f"it most resembles {best.preset} ({best.summary()})"
            )
        return config
    best = closest_preset(layout)
    if not best.exact:
        raise CheckpointError(
            f"{ck.path}: matches no known model; it most resembles {best.preset} ({best.summary()})"
        )
    return PRESETS[best.preset]


def compare_config(layout, config: ModelConfig) -> str:
    """'' when `layout` is exactly what `config` builds, else a one-line summary."""
    with torch.device("meta"):
        expected = layout_of(build_model(config).state_dict())
    missing = set(expected) - set(layout)
    unexpected = set(layout) - set(expected)
    mismatched = [k for k in set(layout) & set(expected) if layout[k] != expected[k]]
    if not (missing or unexpected or mismatched):
        return ""
    return f"{len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} mis-shaped tensor{'' if len(mismatched) == 1 else 's'}"


def instantiate(config: ModelConfig, state: dict[str, torch.Tensor], dtype=torch.float32) -> torch.nn.Module:
    """Build on the meta device and adopt the tensors (no random init of 400 M parameters)."""
    with torch.device("meta"):
        model = build_model(config)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    return model.eval()


def glide_to_piti(
    glide_state: dict[str, torch.Tensor],
    glide_config: ModelConfig,
    input_kind: str,
    encoder: EncoderConfig | None = None,
    seed: int = 0,
    condition_size: int = 0,
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """PITI state dict from a GLIDE one: decoder copied, text side dropped, encoder fresh
    (see `piti_from_glide` for `encoder` and `condition_size`)."""
    config = piti_from_glide(glide_config, input_kind, encoder, condition_size)
    state = {f"decoder.{k}": v for k, v in glide_state.items() if not is_glide_text_key(k)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = ConditionEncoder(config.encoder)
    state.update({f"encoder.{k}": v for k, v in fresh.state_dict().items()})
    return config, state


def load_model(
    path: str | Path,
    preset: str | None = None,
    input_kind: str | None = None,
    glide: str | Path | None = None,
    condition_size: int = 0,
) -> tuple[torch.nn.Module, ModelConfig]:
    """Load any supported file as a ready model.

    - a PITI file (official layout or piti's own): loaded strictly;
    - a GLIDE file with `input_kind`: converted to PITI (new encoder, taking its condition at
      `condition_size` when > 0, else at the matching PITI preset's size);
    - an encoder-only stage-1 file: needs `glide` (GLIDE's file) for the decoder.
    """
    ck = read_checkpoint(path)
    layout = layout_of(ck.state_dict)
    if encoder_only(layout):
        if glide is None:
            raise CheckpointError(f"{ck.path}: holds only the condition encoder (stage 1); pass the GLIDE file for the decoder")
        glide_ck = read_checkpoint(glide)
        glide_config = identify(glide_ck)
        kind = input_kind or _kind_from_encoder(ck, layout)
        config, state = glide_to_piti(glide_ck.state_dict, glide_config, kind)
        enc_diff = {k for k in layout if k not in state or tuple(state[k].shape) != layout[k]}
        if enc_diff:
            raise CheckpointError(f"{ck.path}: encoder does not fit {config.name} ({len(enc_diff)} tensors differ)")
        state.update(ck.state_dict)
        return instantiate(config, state), config
    config = identify(ck, preset)
    if config.family == "glide" and input_kind is not None:
        config, state = glide_to_piti(ck.state_dict, config, input_kind, condition_size=condition_size)
        return instantiate(config, state), config
    return instantiate(config, ck.state_dict), config


def _kind_from_encoder(ck: CheckpointFile, layout) -> str:
    channels = layout.get("encoder.cnn.conv1.weight", (0, 0))[1]
    kind = kind_for_channels(channels)
    if kind is not None:
        return kind.name
    raise CheckpointError(f"{ck.path}: encoder takes {channels} channels, which no input kind has")
