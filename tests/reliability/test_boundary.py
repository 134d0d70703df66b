"""The one error boundary of `piti`, in real processes: unexpected errors are one line saying
it is a bug (traceback only under --debug / PITI_DEBUG=1), messages print as plain text,
SIGINT/SIGTERM stop a run with one line and exit 130 / 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.reliability.conftest import check_refused, colour_mask, invoke, save

BUG = """
import sys
import piti_cli.checkpoints.registry as registry
def broken(path, progress=None, cached=True):
    raise KeyError("boom")
registry.sha256_file = broken
sys.argv = ["piti", *sys.argv[1:]]
from piti_cli.cli.main import run
run()
"""


def _bug(*args, env=None):
    return subprocess.run([sys.executable, "-c", BUG, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_an_unexpected_error_is_one_line_saying_it_is_a_bug(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"x")
    proc = _bug("weights", "hash", str(tmp_path / "x.pt"))
    assert proc.returncode == 70, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bug in piti" in lines[0] and "KeyError" in lines[0] and "--debug" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("how", ["--debug", "PITI_DEBUG=1"])
def test_debug_shows_the_traceback(how, tmp_path):
    args = ["--debug"] if how == "--debug" else []
    (tmp_path / "x.pt").write_bytes(b"x")
    proc = _bug(*args, "weights", "hash", str(tmp_path / "x.pt"), env={"PITI_DEBUG": "1"} if args == [] else None)
    assert proc.returncode == 70
    assert "Traceback" in proc.stderr and "in broken" in proc.stderr and "KeyError: 'boom'" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: internal error")


@pytest.mark.parametrize("name", ["x[/]y.png", "[bold]z.png", "a:smile:b.png", "[red]c[/red].png"])
def test_messages_print_file_names_literally(name, tmp_path, mask_base):
    bad = tmp_path / name  # x[/]y.png is the file ]y.png in the folder x[
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"not a picture")
    result = invoke("sample", "--cond", bad, "--base", mask_base, "--base-only", "--steps", "1", "--out", tmp_path / "o")
    line = check_refused(result, str(bad), code=1)
    assert line.startswith(f"error: {bad}: ")


def test_an_os_error_names_the_file():
    from piti_cli.errors import describe_os_error

    assert describe_os_error(OSError(28, "No space left on device", "/x/a.png")) == "/x/a.png: no space left on the device (disk full)"
    assert describe_os_error(NotADirectoryError(20, "Not a directory", "/f/out")) == "/f/out: a path component is a file, not a folder"


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_with_one_line(signum, code, tmp_path):
    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    for i in range(400):
        save(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), src / f"{i:03d}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "piti_cli", "prep", "degrade", str(src), str(out), "--sf", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob("*.png"))) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before the signal; make the input larger"
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last == (f"error: interrupted by {signal.Signals(signum).name}; the files finished so far are complete "
                    f"in {out}/; no half-written file was left"), stderr
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    written = sorted(out.glob("*.png"))
    assert 0 < len(written) < 400


def test_sigint_during_sample_names_the_output_folder(tmp_path, mask_base):
    for i in range(6):
        colour_mask(tmp_path / "in" / f"{i}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "piti_cli", "sample", "--cond", str(tmp_path / "in"), "--base",
                             str(mask_base), "--base-only", "--steps", "400", "--batch-size", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / ".piti.lock").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (f"error: interrupted by SIGINT; the files finished so far are "
                                              f"complete in {out}/; no half-written file was left"), stderr
    assert not (out / "piti_sample.json").exists()
