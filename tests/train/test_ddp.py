"""Two gloo processes with batch 2 each must train exactly like one process with batch 4."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from piti_cli.train.config import TrainConfig
from piti_cli.train.loop import train
from piti_cli.train.state import latest_checkpoint, load_state
from tests.train.conftest import base_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(TrainConfig.from_dict(cfg))


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_whole_batch(scenes_pack, glide_base, tmp_path):
    common = dict(max_steps=1, batch_size=4, timestep_sampler="loss-second-moment", uncond_p=0.5)
    train(base_config(scenes_pack, glide_base, tmp_path / "one", **common))
    cfg = base_config(scenes_pack, glide_base, tmp_path / "two", **common).to_dict()
    mp.spawn(_worker, args=(2, _free_port(), cfg), nprocs=2, join=True)
    a = load_state(latest_checkpoint(tmp_path / "one"))
    b = load_state(latest_checkpoint(tmp_path / "two"))
    assert b["step"] == 1
    # Compare the averaged gradient (Adam's first moment after one step is 0.1·g). Weights are a
    # poor witness: Adam's first step is ±lr for any gradient, so summation-order noise in a
    # near-zero gradient flips whole steps.
    scale = max(float(s["exp_avg"].abs().max()) for s in a["optimizer"]["state"].values())
    for i, sa in a["optimizer"]["state"].items():
        ga, gb = sa["exp_avg"], b["optimizer"]["state"][i]["exp_avg"]
        torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-5 * scale)
    for key in ("loss_history", "loss_counts"):
        torch.testing.assert_close(a["timestep_sampler"][key], b["timestep_sampler"][key], rtol=1e-4, atol=1e-6)
