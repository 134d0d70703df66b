"""The CUDA checks: tests marked `cuda`, skipped on machines without a GPU (CI has none).

Run them where there is one: `python -m pytest -m cuda tests/cuda` (add `-m "cuda and not
slow"` to leave out the full-size presets). Speed is measured by `benchmarks/cuda_speed.py`.
"""

import pytest
import torch

CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
PRECISIONS = ("fp32", "bf16", "fp16")
