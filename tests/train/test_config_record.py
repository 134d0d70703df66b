"""`config.json` records what the run used: the learning rate resolved, no upsampler-only field
for a base model; reading it back gives the same run."""

from __future__ import annotations

import json

from piti_cli.train.config import DEFAULT_LR, UPSAMPLER_ONLY, TrainConfig


def test_a_base_runs_record_is_typed_and_has_no_upsampler_fields(tmp_path):
    cfg = TrainConfig(data="d.h5", run_dir=str(tmp_path), init="glide-base", stage="encoder")
    cfg.save(tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["lr"] == DEFAULT_LR["encoder"] and isinstance(saved["lr"], float)
    assert not set(UPSAMPLER_ONLY) & set(saved)
    back = TrainConfig.load(tmp_path / "config.json")
    assert back.learning_rate == cfg.learning_rate and back.to_dict() | {"lr": None} == cfg.to_dict()


def test_an_upsampler_run_keeps_its_fields(tmp_path):
    cfg = TrainConfig(data="d.h5", run_dir=str(tmp_path), init="glide-upsample", stage="joint", upsampler=True,
                      adv_weight=0.05)
    cfg.save(tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert set(UPSAMPLER_ONLY) <= set(saved) and saved["adv_weight"] == 0.05
    assert TrainConfig.load(tmp_path / "config.json").adv_weight == 0.05
