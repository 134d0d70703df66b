"""The recipes' budgeted training (`recipes/harness.py`): chunks continue the run, and the time
budget is counted across reruns."""

import json

from piti_cli.train.state import list_checkpoints
from recipes.harness import scene_base_config, train_for
from tests.train.conftest import glide_base, scenes_pack  # noqa: F401  (fixtures)


def test_train_for_continues_the_run_and_keeps_its_budget(tmp_path, scenes_pack, glide_base):
    cfg = scene_base_config(scenes_pack, tmp_path / "run", glide_base, preset="glide-base-tiny", batch_size=2,
                            condition_size=0)
    budget = tmp_path / "budget.json"
    assert train_for(cfg, 1e-6, budget, chunk=1, report=lambda _: None) == 1  # one chunk spends the budget
    spent = json.loads(budget.read_text())["seconds"]
    assert train_for(cfg, 1e-6, budget, chunk=1, report=lambda _: None) == 1  # a rerun: nothing left
    assert train_for(cfg, spent / 60 + 1e-6, budget, chunk=1, report=lambda _: None) == 2
    recorded = json.loads(budget.read_text())
    assert recorded["step"] == 2 and recorded["seconds"] > spent
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [2]  # keep_checkpoints=1
    logged = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2]


def test_train_for_stops_at_its_steps_before_its_minutes(tmp_path, scenes_pack, glide_base):
    cfg = scene_base_config(scenes_pack, tmp_path / "run", glide_base, preset="glide-base-tiny", batch_size=2,
                            condition_size=0)
    budget = tmp_path / "budget.json"
    assert train_for(cfg, 60.0, budget, chunk=2, report=lambda _: None, steps=3) == 3  # chunks of 2, cut at 3
    assert train_for(cfg, 60.0, budget, chunk=2, report=lambda _: None, steps=3) == 3  # a rerun: done
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [3]
