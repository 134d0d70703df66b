import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest
import torch

from piti_cli.checkpoints.registry import BUNDLED_DIR, WeightEntry, fetch, load_manifest, sha256_file
from piti_cli.errors import OfflineError
from piti_cli.models.config import PRESETS
from piti_cli.models.piti import build_model


def piti(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "piti_cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


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
    cut_after = None  # send only this many bytes of the body, then hang up

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
        self.wfile.write(body[: self.cut_after])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.payload = bytes(range(256)) * 4096
    _RangeHandler.served = []
    _RangeHandler.cut_after = None
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


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs the sha256sum binary")
def test_hash_prints_exactly_what_sha256sum_prints(tmp_path):
    names = ["plain.bin", "with space.pt", "back\\slash.pt", "d" * 150 + ".safetensors"]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(bytes(range(i, 256)) * 300)
    ours = piti("weights", "hash", *names, cwd=tmp_path)
    theirs = subprocess.run(["sha256sum", *names], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    check = subprocess.run(["sha256sum", "-c"], input=ours.stdout, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "PITI_WEIGHTS_DIR"}
    return {**env, **extra}


def test_list_json_follows_the_lookup_order(tmp_path):
    home, env_dir, mine = tmp_path / "home", tmp_path / "env", tmp_path / "mine"
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "glide_base.pt").write_bytes(b"x")
    env_dir.mkdir()
    (env_dir / "glide_base.pt").write_bytes(b"x")
    (env_dir / "ViT-B-32.pt").write_bytes(b"x")
    result = piti("weights", "list", "--json", "--weights-dir", str(mine), cwd=tmp_path,
                  env=_env(PITI_HOME=str(home), PITI_WEIGHTS_DIR=str(env_dir)))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["search_dirs"] == [str(mine), str(env_dir), str(home / "weights"), str(BUNDLED_DIR)]
    where = {e["id"]: e["path"] for e in data["entries"]}
    assert where["glide-base"] == str(env_dir / "glide_base.pt")  # env before the cache
    assert where["clip-vit-b32"] == str(env_dir / "ViT-B-32.pt")
    assert where["piti-demo-base"] == str(BUNDLED_DIR / "piti_demo_base.safetensors")
    assert where["glide-upsample"] is None
    manifest = load_manifest()
    assert {e["id"]: e["sha256"] for e in data["entries"]} == {k: v.sha256 for k, v in manifest.items()}
    assert not (tmp_path / "weights").exists()


def test_list_into_a_pipe_keeps_whole_names(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 6) / "weights"
    result = piti("weights", "list", "--weights-dir", str(deep), env=_env(PITI_HOME=str(tmp_path / "home")))
    assert result.returncode == 0, result.stderr
    for entry in load_manifest().values():
        assert entry.filename in result.stdout and entry.id in result.stdout
    assert str(deep) in result.stdout and str(BUNDLED_DIR) in result.stdout


def test_fetch_never_creates_weights_in_the_current_folder(tmp_path, server, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("PITI_HOME", str(home))
    monkeypatch.delenv("PITI_WEIGHTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    offline = WeightEntry("x", "f.bin", "checkpoint", "download", "http://127.0.0.1:9/none", None)
    with pytest.raises(OfflineError):
        fetch(offline)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither ./weights nor the cache
    url = f"http://127.0.0.1:{server.server_address[1]}/f.bin"
    online = WeightEntry("x", "f.bin", "checkpoint", "download", url, hashlib.sha256(_RangeHandler.payload).hexdigest())
    assert fetch(online) == home / "weights" / "f.bin"
    assert (home / "weights" / "f.bin").read_bytes() == _RangeHandler.payload
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_a_download_cut_short_is_kept_and_resumed(tmp_path, server):
    payload = _RangeHandler.payload
    url = f"http://127.0.0.1:{server.server_address[1]}/f.bin"
    entry = WeightEntry("x", "f.bin", "checkpoint", "download", url, hashlib.sha256(payload).hexdigest())
    _RangeHandler.cut_after = 300_000
    with pytest.raises(OfflineError, match="broke off"):
        fetch(entry, tmp_path)
    assert (tmp_path / "f.bin.part").read_bytes() == payload[:300_000] and not (tmp_path / "f.bin").exists()
    _RangeHandler.cut_after = None
    assert fetch(entry, tmp_path).read_bytes() == payload
    assert _RangeHandler.served == [0, 300_000]


def test_a_sum_nobody_publishes_is_pinned_by_the_first_download(tmp_path, server):
    from piti_cli.checkpoints.pins import expected, load_pins
    from piti_cli.checkpoints.registry import verify

    payload = _RangeHandler.payload
    url = f"http://127.0.0.1:{server.server_address[1]}/f.bin"
    entry = WeightEntry("unpublished", "f.bin", "checkpoint", "download", url, None)
    assert expected(entry) == (None, "not pinned")
    fetch(entry, tmp_path / "a")
    held, who = expected(entry)
    assert held == hashlib.sha256(payload).hexdigest() and who.startswith("pinned on first download")
    assert load_pins()["unpublished"]["url"] == url
    assert verify(entry, tmp_path / "a").status == "ok"
    (tmp_path / "a" / "f.bin").write_bytes(payload[::-1])  # the file changed on disk
    assert verify(entry, tmp_path / "a").status == "mismatch"
    _RangeHandler.payload = payload[::-1]  # ... or upstream: a new download must not replace the pin
    with pytest.raises(Exception, match="checksum mismatch.*pinned on first download"):
        fetch(entry, tmp_path / "b")
    assert not (tmp_path / "b" / "f.bin").exists() and load_pins()["unpublished"]["sha256"] == held


def test_fetching_a_bundled_entry_names_where_it_is():
    from typer.testing import CliRunner

    from piti_cli.checkpoints.registry import BUNDLED_DIR
    from piti_cli.cli.main import app

    result = CliRunner().invoke(app, ["weights", "fetch", "piti-demo-base"])
    assert result.exit_code == 0 and "None" not in result.output
    assert result.output.strip() == f"piti-demo-base: {BUNDLED_DIR / 'piti_demo_base.safetensors'}"
