"""`piti sample --fast` resolves to the settings docs/performance.md documents, and refuses the
options it sets when they are given as well."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from piti_cli.pipeline.cascade import FAST

MASK = Path(__file__).resolve().parents[2] / "examples" / "mask" / "scene_0.png"
# docs/performance.md, "The --fast preset": base sampler, steps, guidance interval; upsampler
# sampler, steps; precision auto.
DOCUMENTED = {"base": ("dpmpp-2m", "20", None), "upsampler": ("dpmpp-2m", "10", None)}


def piti(*args):
    return subprocess.run([sys.executable, "-m", "piti_cli", "sample", *args], capture_output=True, text=True,
                          timeout=600)


def native_bf16() -> bool:
    """The CPU flags `--precision auto` looks for, read here from /proc/cpuinfo."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def test_the_preset_is_the_documented_one():
    for stage in ("base", "upsampler"):
        settings = getattr(FAST, stage)
        assert (settings.sampler, settings.steps, settings.guidance_interval) == DOCUMENTED[stage]
    assert FAST.upsampler.guidance == 1.0 and FAST.upsampler.init_scale == 0.997  # the official upsampler
    assert FAST.precision == "auto"


@pytest.mark.slow
@pytest.mark.skipif(not MASK.exists(), reason="bundled example masks missing")
def test_fast_samples_with_the_documented_settings_and_keeps_guidance(tmp_path):
    run = piti("--cond", str(MASK), "--out", str(tmp_path), "--fast", "--guidance", "3", "--device", "cpu")
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "piti_sample.json").read_text())
    sidecar = record["runs"][-1] if "runs" in record else record  # version 2 keeps a list of runs
    for stage in ("base", "upsampler"):
        recorded = sidecar[stage]
        interval = None if recorded["guidance_interval"] is None else tuple(recorded["guidance_interval"])
        sampler, steps, documented_interval = DOCUMENTED[stage]
        assert (recorded["sampler"], recorded["steps"], interval) == (sampler, int(steps), documented_interval)
    assert sidecar["base"]["guidance"] == 3.0 and sidecar["upsampler"]["guidance"] == 1.0
    assert sidecar["settings"]["precision"] == ("bf16" if native_bf16() else "fp32")
    assert (tmp_path / "scene_0.png").exists()


@pytest.mark.parametrize("extra", [["--steps", "50"], ["--upsample-sampler", "ddim"], ["--precision", "fp32"]])
def test_fast_with_an_option_it_sets_is_one_clear_error(tmp_path, extra):
    """Two options that exclude each other: a usage error (exit 2, the README's rule) whose
    one `Error:` line names both."""
    run = piti("--cond", str(MASK), "--out", str(tmp_path / "out"), "--fast", *extra)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    (message,) = [line for line in run.stderr.splitlines() if line.startswith("Error")]
    assert "--fast" in message and extra[0] in message
    assert not (tmp_path / "out" / "piti_sample.json").exists()
