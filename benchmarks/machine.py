"""What every benchmark prints first, and the timing helper they share.

The CPU here is shared, and absolute times vary by up to 1.8× from day to day: scripts pin
the thread count and compare only ratios measured in one run.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def setup(threads: int = 2) -> str:
    """Pin the thread count, turn autograd off; returns the line describing the machine."""
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"machine: {cpu_name()} ({platform.machine()}){gpu}; python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def timed(fn, reps: int, warmup: int = 1) -> float:
    """Mean seconds per call of `fn` over `reps` calls after `warmup` (oneDNN primitive creation)."""
    for _ in range(warmup):
        fn()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - start) / reps


def random_model(preset: str, device: torch.device | str = "cpu", precision: str = "fp32", compile: bool = False):
    """A full or tiny preset with random weights (cost does not depend on them), prepared as
    `piti sample` prepares a model (`cascade.prepare`: dtype, channels-last for bf16 on CPU,
    `--compile`)."""
    from piti_cli.models.config import PRESETS
    from piti_cli.models.piti import build_model
    from piti_cli.pipeline.cascade import prepare

    torch.manual_seed(0)
    model = build_model(PRESETS[preset])
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.02)
    return prepare(model, torch.device(device), precision, compile)


def alternating(first, second, rounds: int) -> tuple[float, float]:
    """The fastest single call of each, measured in turns (load on a shared machine drifts)."""
    times: tuple[list, list] = ([], [])
    for _ in range(rounds):
        for fn, out in zip((first, second), times):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])
