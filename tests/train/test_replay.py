"""A training step is replayable: given the batch (its noise included) and the timesteps, the
step is a pure function of the trainer's state, checked against a float64 restatement of the
hybrid loss (written out here from the closed forms), one AdamW update and the EMA."""

import copy
import math

import numpy as np
import pytest
import torch

from piti_cli.errors import PitiError
from piti_cli.train.data import StepBatches, make_loader
from piti_cli.distributed import DistInfo
from piti_cli.train.loop import Trainer
from tests.train.conftest import base_config

LR, RATE = 1e-3, 0.9


def _cosine_betas(n: int = 1000) -> np.ndarray:
    f = np.cos((np.arange(n + 1) / n + 0.008) / 1.008 * np.pi / 2) ** 2
    return np.minimum(1 - f[1:] / f[:-1], 0.999)


def _tanh_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _loss64(model, batch, t) -> torch.Tensor:
    """Per-sample hybrid loss of a float64 model (learned-range variance, GLIDE's t = 0 term)."""
    betas = _cosine_betas()
    ab = np.cumprod(1 - betas)
    ab_prev = np.append(1.0, ab[:-1])
    post_var = betas * (1 - ab_prev) / (1 - ab)
    post_log_clipped = np.log(np.append(post_var[1], post_var[1:]))
    col = lambda a: torch.from_numpy(a[t.numpy()])[:, None, None, None]  # noqa: E731
    x0, noise = batch["image"].double(), batch["noise"].double()
    x_t = col(np.sqrt(ab)) * x0 + col(np.sqrt(1 - ab)) * noise
    out = model(x_t, t.double(), batch["condition"].double())
    eps, v = out[:, :3], out[:, 3:]
    mse = ((noise - eps) ** 2).flatten(1).mean(1)
    x0_hat = (x_t - col(np.sqrt(1 - ab)) * eps.detach()) / col(np.sqrt(ab))
    c1, c2 = col(betas * np.sqrt(ab_prev) / (1 - ab)), col((1 - ab_prev) * np.sqrt(1 - betas) / (1 - ab))
    mean, true_mean = c1 * x0_hat + c2 * x_t, c1 * x0 + c2 * x_t
    frac = (v + 1) / 2
    log_var = frac * col(np.log(betas)) + (1 - frac) * col(post_log_clipped)
    true_log_var = col(post_log_clipped)
    kl = 0.5 * (-1 + log_var - true_log_var + torch.exp(true_log_var - log_var) + (true_mean - mean) ** 2 * torch.exp(-log_var))
    inv_std = torch.exp(-0.5 * log_var)
    plus, minus = _tanh_cdf(inv_std * (x0 - mean + 1 / 255)), _tanh_cdf(inv_std * (x0 - mean - 1 / 255))
    logp = torch.where(x0 < -0.999, plus.clamp_min(1e-12).log(),
                       torch.where(x0 > 0.999, (1 - minus).clamp_min(1e-12).log(), (plus - minus).clamp_min(1e-12).log()))
    vb = torch.where(t == 0, -logp.flatten(1).mean(1), kl.flatten(1).mean(1)) / math.log(2)
    return mse + vb


def _trainer(scenes_pack, glide_base, tmp_path, **overrides):
    cfg = base_config(scenes_pack, glide_base, tmp_path / "run", lr=LR, ema_rates=(RATE,), uncond_p=0.0,
                      timestep_sampler="loss-second-moment", **overrides)
    trainer = Trainer.from_run_dir(cfg, DistInfo(), torch.device("cpu"))
    batch = next(iter(make_loader(trainer.stream, StepBatches(0, 1, cfg.batch_size, 0, 1))))
    return trainer, batch


def test_a_step_with_given_t_matches_a_float64_restatement(scenes_pack, glide_base, tmp_path):
    trainer, batch = _trainer(scenes_pack, glide_base, tmp_path)
    t = torch.tensor([0, 1, 500, 999])  # t = 0: the decoder NLL term
    model64 = copy.deepcopy(trainer.model).double()
    before = {k: p.detach().clone() for k, p in trainer.model.named_parameters()}
    out = trainer.train_step(batch, t, per_sample=True)

    loss64 = _loss64(model64, {k: v for k, v in batch.items() if torch.is_tensor(v)}, t)
    np.testing.assert_allclose(out["per_sample"]["loss"].numpy(), loss64.detach().numpy(), rtol=2e-4)
    loss64.mean().backward()
    # AdamW's first step (β = 0.9, 0.999, ε = 1e-8, no decay): p − lr·g / (|g| + ε); its first
    # moment is 0.1·g. Adam's first step is ±lr for any gradient, so the weights are compared
    # where the gradient is well above float32 summation noise, and the moments everywhere.
    state, grads = trainer.opt.state, {k: p.grad for k, p in model64.named_parameters()}
    scale = max(float(g.abs().max()) for g in grads.values())  # noise floor: relative to the largest
    for name, p in trainer.model.named_parameters():
        g = grads[name]
        torch.testing.assert_close(state[p]["exp_avg"].double(), 0.1 * g, rtol=1e-3, atol=1e-4 * scale)
        clear = g.abs() > 1e-3 * scale
        expected = before[name].double() - LR * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p.detach().double()[clear], expected[clear], rtol=0, atol=1e-7)
        ema = dict(trainer.ema.models[0].named_parameters())[name].detach()
        torch.testing.assert_close(ema.double(), RATE * before[name].double() + (1 - RATE) * p.detach().double(),
                                   rtol=1e-6, atol=1e-7)
    # the sampler still records every sample's loss at its t
    counts = trainer.sampler.state_dict()["loss_counts"]
    assert counts[t].tolist() == [1, 1, 1, 1] and int(counts.sum()) == 4


def test_the_same_state_batch_and_t_give_the_same_step(scenes_pack, glide_base, tmp_path):
    a, batch = _trainer(scenes_pack, glide_base, tmp_path / "a")
    b, _ = _trainer(scenes_pack, glide_base, tmp_path / "b")
    t = torch.tensor([3, 250, 700, 990])
    ra, rb = a.train_step(batch, t, per_sample=True), b.train_step(batch, t, per_sample=True)
    assert torch.equal(ra["per_sample"]["loss"], rb["per_sample"]["loss"])
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        assert torch.equal(p, q), name


def test_a_non_finite_loss_stops_the_step_with_its_number(scenes_pack, glide_base, tmp_path):
    trainer, batch = _trainer(scenes_pack, glide_base, tmp_path)
    batch["noise"] = batch["noise"].clone()
    batch["noise"][0, 0, 0, 0] = float("nan")
    with pytest.raises(PitiError, match="step 1: .* is nan"):
        trainer.train_step(batch, torch.tensor([5, 6, 7, 8]))
