"""GPU speed of the full presets (random weights; cost does not depend on them), per precision.

Prints ms per guided base call (batch 2, 64²) and per upsampler call (batch 1, 256²), and
the resulting seconds per image at the official 250 + fast27 schedule (encoder once). The
correctness checks on a GPU are the tests marked `cuda` (`python -m pytest -m cuda tests/cuda`).

    python -m benchmarks.cuda_speed
"""

from __future__ import annotations

import sys
import time

import torch

from piti_cli.models.config import PRESETS
from piti_cli.models.piti import build_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def timed(fn, reps: int = 10) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("cuda_speed: no CUDA device on this machine")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # true fp32
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    ms: dict[str, dict[str, float]] = {p: {} for p in DTYPES}
    t = torch.tensor([500.0, 500.0])
    with torch.no_grad(), torch.device("cuda"):
        base = build_model(PRESETS["piti-base-mask"]).eval()
        for precision, dtype in DTYPES.items():
            base.to(dtype)
            emb = base.encode(torch.rand(2, 3, 256, 256, dtype=dtype))
            x = torch.randn(2, 3, 64, 64, dtype=dtype)
            ms[precision]["base"] = 1000 * timed(lambda: base(x, t, embedding=emb))
        del base
        up = build_model(PRESETS["piti-upsample-mask"]).eval()
        for precision, dtype in DTYPES.items():
            up.to(dtype)
            emb = up.encode(torch.rand(1, 3, 256, 256, dtype=dtype))
            x, low = torch.randn(1, 3, 256, 256, dtype=dtype), torch.rand(1, 3, 64, 64, dtype=dtype)
            ms[precision]["upsampler"] = 1000 * timed(lambda: up(x, t[:1], embedding=emb, low_res=low), reps=5)
        del up
    for precision, row in ms.items():
        per_image = (250 * row["base"] + 27 * row["upsampler"]) / 1000
        print(f"{precision}: guided base call {row['base']:.1f} ms, upsampler call {row['upsampler']:.1f} ms, "
              f"{per_image:.1f} s per image at 250 + fast27 ({ms['fp32']['base'] / row['base']:.2f}x fp32's base speed)")


if __name__ == "__main__":
    main()
