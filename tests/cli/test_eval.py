"""`piti eval` end to end on small folders, with injected random-weight extractors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from piti_cli.cli.main import app
from piti_cli.data.images import IMAGE_SUFFIXES
from tests.metrics.conftest import fake_extractors  # noqa: F401  (fixture)

runner = CliRunner()


def _folder(root: Path, n: int, seed: int, shift: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.clip(rng.integers(0, 200, size=(40, 40, 3)) + shift, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{i:03d}.png")
    return root


@pytest.fixture
def sets(tmp_path, monkeypatch, fake_extractors):
    monkeypatch.setenv("PITI_CACHE_DIR", str(tmp_path / "cache"))
    gen = _folder(tmp_path / "gen", 12, seed=1, shift=50)
    ref = _folder(tmp_path / "ref", 14, seed=2)
    return gen, ref


def _fid(*args):
    return runner.invoke(app, ["eval", "fid", *map(str, args)])


def _error_line(res) -> str:
    """The one line a user error prints (beside progress lines): exit code 1, no traceback."""
    assert res.exit_code == 1 and "Traceback" not in res.stderr, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_fid_json_records_n_network_and_preprocessing(sets):
    gen, ref = sets
    res = _fid(gen, "--ref", ref, "--features", "both", "--json", "--kid", "--kid-subsets", "5")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for kind in ("inception", "clip"):
        m = out["metrics"][kind]
        assert m["fid"] > 0 and m["n_gen"] == 12 and m["n_ref"] == 14
        assert m["feature_net"] == f"fake-{kind}" and m["weights_sha256"] == "ab" * 32
        assert m["preprocessing"].startswith("fake") and "kid" in m
    assert out["thresholds"]["passed"]
    # N below the feature dimension? (fake dims are 8 and 6 < 12) -> no warning here
    assert out["warnings"] == []


def test_fid_same_folder_is_zero_and_cache_reused(sets, tmp_path):
    gen, _ = sets
    first = json.loads(_fid(gen, "--ref", gen, "--json").stdout)
    assert first["metrics"]["inception"]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert list((tmp_path / "cache" / "eval-stats").glob("*.npz"))
    again = json.loads(_fid(gen, "--ref", gen, "--json").stdout)
    assert again["metrics"]["inception"]["fid"] == first["metrics"]["inception"]["fid"]


def test_max_fid_gates_ci(sets):
    gen, ref = sets
    value = json.loads(_fid(gen, "--ref", ref, "--json").stdout)["metrics"]["inception"]["fid"]
    ok = _fid(gen, "--ref", ref, "--max-fid", value + 1)
    assert ok.exit_code == 0
    bad = _fid(gen, "--ref", ref, "--max-fid", value / 2)
    assert bad.exit_code == 3
    assert "FID-I" in bad.stderr and "exceeds" in bad.stderr


def test_stats_file_roundtrip_and_mismatch(sets, tmp_path, fake_extractors):
    gen, ref = sets
    npz = tmp_path / "ref.npz"
    res = runner.invoke(app, ["eval", "stats", str(ref), "--out", str(npz), "--features", "both"])
    assert res.exit_code == 0, res.output
    direct = json.loads(_fid(gen, "--ref", ref, "--json", "--no-cache").stdout)["metrics"]["inception"]["fid"]
    via = json.loads(_fid(gen, "--ref", npz, "--json").stdout)["metrics"]["inception"]["fid"]
    assert via == pytest.approx(direct, rel=1e-10)
    # Statistics of other weights are refused with one line naming the file.
    fake_extractors(weights_sha256="cd" * 32)
    res = _fid(gen, "--ref", npz)
    msg = _error_line(res)
    assert "ref.npz" in msg and "weights" in msg
    # A stats file with only inception statistics, asked for clip.
    fake_extractors(weights_sha256="ab" * 32)
    only = tmp_path / "only.npz"
    runner.invoke(app, ["eval", "stats", str(ref), "--out", str(only)])
    res = _fid(gen, "--ref", only, "--features", "clip")
    assert "no clip statistics" in _error_line(res)
    # A foreign mu/sigma file of the wrong dimension.
    np.savez(tmp_path / "foreign.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    res = _fid(gen, "--ref", tmp_path / "foreign.npz")
    assert "dimension 2048" in _error_line(res)


def test_small_n_warns(sets, tmp_path):
    gen, ref = sets
    res = _fid(gen, "--ref", ref, "--num", 4, "--json")
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert out["metrics"]["inception"]["n_gen"] == 4
    assert any("below the feature dimension" in w for w in out["warnings"])
    assert "KID" in res.stderr or "--kid" in res.stderr


def test_bad_inputs_one_line_each(sets, tmp_path):
    gen, ref = sets
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _fid(empty, "--ref", ref)
    assert "no images found" in _error_line(res)
    broken = _folder(tmp_path / "broken", 3, seed=5)
    (broken / "zzz.png").write_bytes(b"\x89PNG garbage")
    res = _fid(broken, "--ref", ref)
    assert "zzz.png: unreadable image" in _error_line(res)


def test_entry_point_prints_one_red_line(sets, tmp_path):
    gen, _ = sets
    empty = tmp_path / "nothing"
    empty.mkdir()
    res = _fid(gen, "--ref", empty)
    assert _error_line(res) == f"error: {empty}: no images found ({', '.join(IMAGE_SUFFIXES)})"


def test_missing_weights_say_where_they_go(tmp_path, monkeypatch):
    monkeypatch.setenv("PITI_WEIGHTS_DIR", str(tmp_path / "w"))
    gen = _folder(tmp_path / "g", 3, seed=0)
    res = _fid(gen, "--ref", gen, "--features", "clip")
    msg = _error_line(res)
    assert "ViT-B-32.pt not found in" in msg and "piti weights fetch clip-vit-b32" in msg


def test_an_empty_folder_is_named_before_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("PITI_WEIGHTS_DIR", str(tmp_path / "w"))  # no Inception weights anywhere
    (tmp_path / "empty").mkdir()
    ref = _folder(tmp_path / "r", 3, seed=0)
    msg = _error_line(_fid(tmp_path / "empty", "--ref", ref))
    assert msg.startswith(f"error: {tmp_path / 'empty'}: no images found") and "fetch" not in msg


def test_lpips_diversity_groups(tmp_path):
    root = tmp_path / "samples"
    for cond in ("a", "b"):
        _folder(root / cond, 3, seed=ord(cond))
    res = runner.invoke(app, ["eval", "lpips", str(root), "--random-backbone", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["groups"] == 2 and out["pairs"] == 6 and out["lpips_diversity"] > 0
    # identical samples have zero diversity
    same = tmp_path / "same"
    same.mkdir()
    img = Image.fromarray(np.full((32, 32, 3), 90, np.uint8))
    for k in range(3):
        img.save(same / f"c1_s{k}.png")
    out = json.loads(runner.invoke(app, ["eval", "lpips", str(same), "--random-backbone", "--json"]).stdout)
    assert out["lpips_diversity"] == pytest.approx(0.0, abs=1e-6)


def test_lpips_without_backbone_is_clear(tmp_path):
    root = tmp_path / "s"
    _folder(root / "c", 2, seed=0)
    res = runner.invoke(app, ["eval", "lpips", str(root)])
    assert "--backbone-weights" in _error_line(res)


def test_kid_against_stats_with_features(sets, tmp_path):
    gen, ref = sets
    npz = tmp_path / "kid.npz"
    assert runner.invoke(app, ["eval", "stats", str(ref), "--out", str(npz), "--keep-features"]).exit_code == 0
    a = json.loads(_fid(gen, "--ref", npz, "--kid", "--kid-subsets", "7", "--json").stdout)["metrics"]["inception"]
    b = json.loads(_fid(gen, "--ref", ref, "--kid", "--kid-subsets", "7", "--json", "--no-cache").stdout)["metrics"]["inception"]
    assert a["kid"] == pytest.approx(b["kid"], rel=1e-5) and a["kid_seed"] == 0
