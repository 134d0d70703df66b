"""Device and precision choices shared by sampling, training and evaluation."""

from __future__ import annotations

import contextlib

import torch

from piti_cli.errors import PitiError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PitiError(f"--device {name}: CUDA is not available on this machine")
    return device


def autocast(device: torch.device, precision: str = "fp32"):
    """Autocast context for `precision` on `device`; fp32 means no autocast.

    fp16 on CPU is refused: CPU kernels for half are slow and inaccurate; use bf16 there.
    """
    if precision not in PRECISIONS:
        raise PitiError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type == "cpu" and precision == "fp16":
        raise PitiError("--precision fp16 needs a CUDA device; use bf16 on CPU")
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])
