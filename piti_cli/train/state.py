"""Run-folder files: training-state checkpoints, the initial model, and EMA export.

A run folder holds ``config.json`` (the resolved `TrainConfig`), ``metrics.jsonl``,
``samples/step_XXXXXXX.png`` and ``checkpoints/step_XXXXXXX.pt``. A checkpoint holds
everything a resumed run needs to continue bit-for-bit: model, EMA models, optimizer(s),
grad scaler, timestep-sampler history and generator, RNG states and the step (the data
order is a function of the step, see `piti_cli.train.data`). It is written atomically and
read with ``weights_only=True``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Any

import torch

from piti_cli.checkpoints.convert import glide_to_piti, instantiate, load_model
from piti_cli.checkpoints.io import non_finite_tensors, save_checkpoint, torch_load
from piti_cli.checkpoints.registry import resolve
from piti_cli.errors import CheckpointError, InputError
from piti_cli.io_utils import atomic_torch_save
from piti_cli.models.config import PRESETS, ModelConfig

STATE_FORMAT = "piti-train-state"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    if keep <= 0:
        return
    for _, path in list_checkpoints(run_dir)[:-keep]:
        path.unlink(missing_ok=True)


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    atomic_torch_save({"format": STATE_FORMAT, **state}, path)


def load_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    state = torch_load(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a piti training checkpoint")
    missing = [k for k in ("step", "model_config", "model", "ema", "optimizer", "timestep_sampler") if k not in state]
    if missing or not isinstance(state["ema"], dict) or not isinstance(state["model"], dict):
        raise CheckpointError(f"{path}: incomplete training checkpoint (missing {', '.join(missing) or 'a state dict'})")
    for part, tensors in [("model", state["model"]), *((f"EMA {r}", e) for r, e in state["ema"].items())]:
        bad = non_finite_tensors(tensors) if isinstance(tensors, dict) else ["(not a state dict)"]
        if bad:
            raise CheckpointError(f"{path}: {len(bad)} {part} tensors are not finite (first: {bad[0]}); "
                                  f"neither resumed from nor exported")
    try:
        ModelConfig.from_dict(state["model_config"])
    except Exception as err:  # KeyError, TypeError, ValueError from the fields
        raise CheckpointError(f"{path}: bad model config ({type(err).__name__}: {err})") from None
    return state


def _state_source(run_or_file: str | Path) -> Path:
    """A training checkpoint given as itself or as the run folder holding it."""
    path = Path(run_or_file)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise InputError(f"{path}: run folder has no checkpoints yet")
        return found
    if not path.exists():
        raise InputError(f"{path}: no such run folder or training checkpoint")
    return path


def ema_state(run_or_file: str | Path, rate: float | None = None, raw: bool = False) -> tuple[dict[str, torch.Tensor], ModelConfig, int]:
    """(EMA state dict, model config, step) of a run folder or training checkpoint.
    `rate` picks one of several EMA rates (default: the first); `raw` takes the trained
    weights instead of an EMA."""
    weights, config, step, _ = _pick(run_or_file, rate, raw)
    return weights, config, step


def _pick(run_or_file, rate: float | None, raw: bool):
    """`ema_state` plus the EMA rate taken (None with `raw`)."""
    state = load_state(_state_source(run_or_file))
    config, step = ModelConfig.from_dict(state["model_config"]), int(state["step"])
    if raw:
        return state["model"], config, step, None
    emas = state["ema"]
    key = next(iter(emas)) if rate is None else str(float(rate))
    if key not in emas:
        raise InputError(f"{run_or_file}: no EMA with rate {rate}; the run keeps {', '.join(emas)}")
    return emas[key], config, step, float(key)


def young_ema(rate: float, step: int) -> str | None:
    """A warning when an EMA of `rate` has seen fewer than 1/(1 − rate) updates: it still holds
    rate^step of the initial weights (0.37 at exactly that many)."""
    if rate >= 1.0 or step >= round(1.0 / (1.0 - rate), 6):
        return None
    return (f"the EMA (rate {rate:g}) has seen {step} updates, fewer than 1/(1 − rate) = {1 / (1 - rate):.0f}: "
            f"it still holds {rate ** step:.2f} of the initial weights; --raw exports the trained weights")


def export_ema(run_or_file: str | Path, out: str | Path, rate: float | None = None, raw: bool = False,
               warn: Callable[[str], None] | None = None) -> tuple[Path, ModelConfig, int]:
    """Write the EMA weights as a model file: ``.pt`` = the official plain layout (what the
    official code and `piti sample` read), ``.safetensors`` = the same tensors plus the
    config (needed for presets no official layout identifies, e.g. the tiny ones).
    ``raw=True`` writes the trained weights instead: an EMA of rate r still holds r^steps of
    the initial weights, so a short run (0.995^225 = 0.32) is better exported raw: `warn`
    gets `young_ema`'s message when that is so."""
    out = Path(out)
    if out.suffix not in (".pt", ".pth", ".safetensors"):
        raise InputError(f"{out}: export to a .pt or .safetensors file")
    state, config, step, taken = _pick(run_or_file, rate, raw)
    if out.suffix != ".safetensors" and PRESETS.get(config.name) != config:
        raise InputError(f"{out}: a .pt file keeps no config, and this model is not the preset {config.name} "
                         "as it stands (e.g. the demo's grid position or another condition size); export to "
                         f"{out.with_suffix('.safetensors').name}")
    message = None if taken is None else young_ema(taken, step)
    if message and warn is not None:
        warn(message)
    save_checkpoint(out, state, config=config if out.suffix == ".safetensors" else None,
                    extra={"step": step} if out.suffix == ".safetensors" else None)
    return out, config, step


def initial_model(init: str, *, preset: str | None, input_kind: str | None, glide: str | None,
                  weights_dir: str | None = None, family: str = "piti", condition_size: int = 0):
    """(model, config) to start from: a run folder (EMA of its latest checkpoint, as the
    official stage 2 starts from stage 1's EMA), a PITI file, or a GLIDE file / registry id
    (converted: decoder copied, fresh encoder for `input_kind`). `family="glide"` asks for a
    GLIDE model as it is (text-to-image pretraining). `condition_size` > 0 sets the input
    size of a fresh encoder (its tokens: (size/16)²), else the matching PITI preset's."""
    if Path(init).is_dir():
        state, config, _ = ema_state(init)
        if family == "piti" and config.family == "glide" and input_kind is not None:
            config, state = glide_to_piti(state, config, input_kind, condition_size=condition_size)
        model = instantiate(config, state)
    else:
        path = resolve(init, weights_dir)
        model, config = load_model(path, preset=preset, input_kind=input_kind if family == "piti" else None,
                                   glide=str(resolve(glide, weights_dir)) if glide else None,
                                   condition_size=condition_size)
    if config.family != family:
        raise InputError(f"{init}: a GLIDE file needs --input-kind to become a PITI model" if family == "piti"
                         else f"{init}: --stage pretrain trains a GLIDE model; this is a PITI model")
    # instantiate adopts the file's tensors; own them before training changes them in place
    model.load_state_dict({k: v.detach().clone().float() for k, v in model.state_dict().items()}, assign=True)
    return model.float().train().requires_grad_(True), config
