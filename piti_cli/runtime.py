"""Device and precision choices shared by sampling, training and evaluation."""

from __future__ import annotations

import contextlib
import hashlib

import torch

from piti_cli import choices
from piti_cli.choices import check_table
from piti_cli.errors import PitiError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # by piti_cli.choices.PRECISIONS
check_table(PRECISIONS, choices.PRECISIONS, "precisions")
PRECISION_CHOICES = ("auto", *PRECISIONS)


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts (ints, strings), the same in every process and on every
    machine: sha256 over their text, so (seed, condition id, sample index) names one picture's
    noise whatever batch or process it is sampled in. Part boundaries are kept ("a", "bc" and
    "ab", "c" differ)."""
    digest = hashlib.sha256("\x1f".join(f"{type(p).__name__}:{p}" for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; 'cpu', 'cuda', 'cuda:N'. Anything else (mps,
    tpu, ...) and 'cuda' without a GPU are one-line errors naming the choices."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = str(name).partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise PitiError(f"--device {name}: unknown device; choose one of {DEVICE_CHOICES}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise PitiError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise PitiError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> str:
    """`precision` if it is one of PRECISIONS and runs on `device` (fp16 on CPU is refused:
    CPU half kernels are slow and inaccurate; bf16 is the CPU's fast path); the one home of
    these checks, run as soon as the device is known."""
    if precision not in PRECISIONS:
        raise PitiError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if device.type == "cpu" and precision == "fp16":
        raise PitiError("--precision fp16 needs a CUDA device; use bf16 on CPU")
    return precision


def autocast(device: torch.device, precision: str = "fp32"):
    """Autocast context for `precision` on `device`; fp32 means no autocast.

    fp16 on CPU is refused: CPU kernels for half are slow and inaccurate; use bf16 there.
    """
    if check_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 pays off."""
    try:
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    except OSError:
        flags = ""
    if {"avx512_bf16", "amx_bf16"} & set(flags.split()):
        return True
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    return "AMX" in str(capability).upper()


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' → bf16 on a CUDA device that supports it or a CPU with native bf16, else fp32.

    fp32 is the faithful path (the official code samples in fp32); bf16 is the fast one."""
    if name not in PRECISION_CHOICES:
        raise PitiError(f"--precision {name}: choose one of {', '.join(PRECISION_CHOICES)}")
    if name != "auto":
        return check_precision(name, device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
