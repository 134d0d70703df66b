import hashlib
import http.server
import subprocess
import sys
import threading

import pytest
import torch

from piti_cli.checkpoints.registry import WeightEntry, fetch, load_manifest, sha256_file
from piti_cli.errors import OfflineError
from piti_cli.models.config import PRESETS
from piti_cli.models.piti import build_model


def piti(*args, env=None):
    return subprocess.run([sys.executable, "-m", "piti_cli", *args], capture_output=True, text=True, env=env, timeout=120)


def test_manifest_lists_the_known_files():
    entries = load_manifest()
    for key in ("glide-base", "glide-upsample", "piti-base-mask", "piti-upsample-mask",
                "piti-base-sketch", "piti-upsample-sketch", "clip-vit-b32", "fid-inception"):
        assert key in entries
    for entry in entries.values():
        assert entry.source in ("download", "manual", "bundled")
        if entry.preset:
            assert entry.preset in PRESETS


def test_inspect_and_hash_from_the_cli(tmp_path):
    state = {k: torch.randn_like(v) for k, v in build_model(PRESETS["piti-base-sketch-tiny"]).state_dict().items()}
    torch.save(state, tmp_path / "m.pt")
    result = piti("weights", "inspect", str(tmp_path / "m.pt"))
    assert result.returncode == 0, result.stderr
    assert "piti-base-sketch-tiny" in result.stdout and "exact match" in result.stdout
    assert f"{sum(v.numel() for v in state.values()):,}" in result.stdout
    result = piti("weights", "hash", str(tmp_path / "m.pt"))
    assert hashlib.sha256((tmp_path / "m.pt").read_bytes()).hexdigest() in result.stdout


def test_inspect_bad_file_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 not really a zip")
    result = piti("weights", "inspect", str(tmp_path / "bad.pt"))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad.pt" in lines[0] and "Traceback" not in result.stderr


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    served = []

    def do_GET(self):  # noqa: N802
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.served.append(start)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.payload = bytes(range(256)) * 4096
    _RangeHandler.served = []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def test_fetch_resumes_a_partial_download_and_checks_the_sum(tmp_path, server):
    payload = _RangeHandler.payload
    url = f"http://127.0.0.1:{server.server_address[1]}/f.bin"
    entry = WeightEntry("x", "f.bin", "checkpoint", "download", url, hashlib.sha256(payload).hexdigest())
    (tmp_path / "f.bin.part").write_bytes(payload[:1000])
    path = fetch(entry, tmp_path)
    assert path.read_bytes() == payload
    assert _RangeHandler.served == [1000]
    assert not (tmp_path / "f.bin.part").exists()
    assert sha256_file(path) == entry.sha256


def test_fetch_rejects_a_wrong_checksum_and_keeps_nothing(tmp_path, server):
    url = f"http://127.0.0.1:{server.server_address[1]}/f.bin"
    entry = WeightEntry("x", "f.bin", "checkpoint", "download", url, "0" * 64)
    with pytest.raises(Exception, match="checksum mismatch"):
        fetch(entry, tmp_path)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()


def test_fetch_offline_is_a_clear_error(tmp_path):
    entry = WeightEntry("x", "f.bin", "checkpoint", "download", "http://127.0.0.1:9/none", None)
    with pytest.raises(OfflineError, match="cannot reach"):
        fetch(entry, tmp_path)
