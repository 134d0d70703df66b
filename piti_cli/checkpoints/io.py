"""Reading and writing checkpoint files, safely.

Read: `.pt`/`.pth` through `torch.load(weights_only=True)` (no pickle code runs) and
`.safetensors`. Official files are plain state dicts; `module.` prefixes (DDP) are stripped;
piti's own files wrap the state dict with the preset config so a file says what it is.
Every failure becomes one `CheckpointError` line naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from piti_cli.errors import CheckpointError, brief, one_line
from piti_cli.io_utils import atomic_path
from piti_cli.models.config import ModelConfig

PITI_FORMAT = "piti-checkpoint"
PITI_FORMAT_VERSION = 1
_WRAPPER_KEYS = ("state_dict", "model", "ema", "model_state_dict")


@dataclass
class CheckpointFile:
    path: Path
    state_dict: dict[str, torch.Tensor]
    config: ModelConfig | None = None  # present in files piti wrote
    extra: dict[str, Any] = field(default_factory=dict)


_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"


def torch_load(path: str | Path) -> Any:
    """What a `.pt`/`.pth` file holds, read with `weights_only=True` (no pickle code runs); any
    failure is one `CheckpointError` naming the file and the problem in words: missing, a
    folder, not a torch file, truncated or corrupt, or needing code execution."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a checkpoint file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTO)):
        raise CheckpointError(f"{path}: not a torch checkpoint (neither a torch zip archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses any global that is not a tensor/primitive: that is code execution.
        detail = str(err).splitlines()
        hint = next((line.strip() for line in detail if "GLOBAL" in line or "global" in line), "")
        if not hint:
            raise CheckpointError(f"{path}: truncated or corrupt (not a loadable pickle)") from None
        raise CheckpointError(
            f"{path}: refused: the file needs pickle code execution to load ({brief(hint, 120)}); "
            "only plain tensors are accepted"
        ) from None
    except RuntimeError as err:
        message = str(err)
        if "data.pkl" in message or "archive" in message.lower() or "zip" in message.lower():
            raise CheckpointError(f"{path}: truncated or corrupt (not a complete torch archive)") from None
        raise CheckpointError(f"{path}: cannot be read: {brief(message)}") from None
    except MemoryError:
        raise CheckpointError(f"{path}: corrupt (claims more memory than this machine has)") from None
    except Exception as err:  # the unpickler fails in many ways on broken bytes
        raise CheckpointError(f"{path}: truncated or corrupt ({type(err).__name__})") from None


def _safetensors_load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, metadata
    except MemoryError:
        raise CheckpointError(f"{path}: corrupt safetensors file (claims more memory than this machine has)") from None
    except Exception as err:  # SafetensorError, OSError, ValueError, ... on broken bytes
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({str(err)[:120]})") from None


def _config(path: Path, data: Any, where: str) -> ModelConfig:
    """The stored preset config, or one CheckpointError saying what is wrong with it."""
    try:
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise TypeError(f"a {type(data).__name__}, not a mapping")
        return ModelConfig.from_dict(data)
    except Exception as err:  # JSONDecodeError, KeyError, TypeError, ValueError from the fields
        detail = f"missing field {err}" if isinstance(err, KeyError) else one_line(str(err))[:120]
        raise CheckpointError(f"{path}: bad {where} ({detail})") from None


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or ±inf. Checked with numpy: one
    torch op per tensor costs milliseconds of thread-pool overhead, numpy microseconds."""
    bad = []
    for name, value in state.items():
        if value.is_floating_point():
            arr = value.detach().cpu()
            arr = arr.numpy() if arr.dtype in (torch.float16, torch.float32, torch.float64) else arr.float().numpy()
            if not np.isfinite(arr).all():
                bad.append(name)
    return bad


def read_checkpoint(path: str | Path, *, check_finite: bool = True) -> CheckpointFile:
    """Read any supported checkpoint into a flat `{name: tensor}` state dict.

    Every problem is one `CheckpointError` naming the file: unreadable bytes, code in the
    pickle, no tensors, a bad stored config, and (with `check_finite`) NaN/Inf in a tensor."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {'a folder, not a checkpoint file' if path.is_dir() else 'no such file'}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file")
    config = None
    extra: dict[str, Any] = {}
    if path.suffix == ".safetensors":
        state, metadata = _safetensors_load(path)
        if "piti_config" in metadata:
            config = _config(path, metadata["piti_config"], "piti_config metadata")
        extra = {k: v for k, v in metadata.items() if k != "piti_config"}
    else:
        obj = torch_load(path)
        if not isinstance(obj, dict):
            raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
        if obj.get("format") == PITI_FORMAT:
            if "config" not in obj:
                raise CheckpointError(f"{path}: piti checkpoint without its config")
            config = _config(path, obj["config"], "config")
            extra = {k: v for k, v in obj.items() if k not in ("state_dict", "config", "format")}
            obj = obj.get("state_dict")
            if not isinstance(obj, dict):
                raise CheckpointError(f"{path}: piti checkpoint without a state_dict")
        else:
            for key in _WRAPPER_KEYS:
                if isinstance(obj.get(key), dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                    obj = obj[key]
                    break
        state = obj
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: contains no tensors")
    if check_finite:
        bad = non_finite_tensors(tensors)
        if bad:
            raise CheckpointError(f"{path}: {len(bad)} tensor(s) hold NaN or infinite values, e.g. {bad[0]}; "
                                  "the file is broken (a diverged run or a damaged copy)")
    return CheckpointFile(path, strip_prefix(tensors), config, extra)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove a DDP-style prefix when every key carries it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _sort_safetensors_metadata(path: Path) -> None:
    """safetensors writes its metadata map in an order that changes from process to process;
    rewrite the header with sorted keys so the same weights always give the same bytes (and
    the same sha256 in the manifest). The header keeps its length (same keys and values,
    space-padded as the format allows)."""
    with open(path, "r+b") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        if len(header.get("__metadata__") or {}) < 2:
            return
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) <= size:
            f.seek(8)
            f.write(text + b" " * (size - len(text)))


def save_checkpoint(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    config: ModelConfig | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write atomically. `.safetensors` stores the config as metadata; `.pt` with a config
    writes piti's wrapper, without one a plain (official-layout) state dict."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            metadata = {k: str(v) for k, v in (extra or {}).items()}
            if config is not None:
                metadata["piti_config"] = json.dumps(config.to_dict())
            mode = os.stat(tmp).st_mode  # the umask's; safetensors recreates the file as 0600
            save_file(state, str(tmp), metadata=metadata)
            os.chmod(tmp, mode)
            _sort_safetensors_metadata(tmp)
        elif config is None:
            torch.save(state, tmp)
        else:
            torch.save(
                {"format": PITI_FORMAT, "version": PITI_FORMAT_VERSION, "config": config.to_dict(),
                 "state_dict": state, **(extra or {})},
                tmp,
            )
