"""`piti sample --guidance-interval LO,HI` and `--sampler dpmpp-3m` from the command line."""

import json

import pytest

from tests.cli.test_sample import piti
from tests.pipeline.conftest import tiny_sketch_base  # noqa: F401  (fixture)


@pytest.mark.parametrize("bad", ["700,100", "0,1001", "-5,10", "nan,5", "5,inf", "10", "1,2,3", "a,b", "5,5"])
def test_bad_interval_is_one_clear_error(tmp_path, bad):
    result = piti("sample", "--cond", str(tmp_path), "--guidance-interval", bad, "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "--guidance-interval" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_interval_and_3m_reach_the_sidecar(tmp_path, tiny_sketch_base, reference_dir):
    sketch = sorted((reference_dir / "piti_test_inputs" / "sketch").glob("*.png"))[0]
    result = piti("sample", "--cond", str(sketch), "--base", str(tiny_sketch_base), "--base-only",
                  "--sampler", "dpmpp-3m", "--steps", "5", "--guidance", "3", "--guidance-interval", "100,600.5",
                  "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    base = json.loads((tmp_path / "o" / "piti_sample.json").read_text())["runs"][-1]["base"]
    assert base["guidance_interval"] == [100.0, 600.5] and base["sampler"] == "dpmpp-3m"
