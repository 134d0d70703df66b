import torch
from torch import nn

from piti_cli.train.ema import EMA


def test_ema_matches_its_closed_form_and_skips_frozen_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[1].requires_grad_(False)
    p0 = model[0].weight.detach().clone()
    frozen = model[1].weight.detach().clone()
    rates = (0.9, 0.5)
    ema = EMA(model, rates)
    seq = [torch.randn_like(p0) for _ in range(5)]
    for p in seq:
        with torch.no_grad():
            model[0].weight.copy_(p)
            model[1].weight.add_(1.0)  # a frozen tensor that moves anyway must not leak into the EMA
        ema.update(model)
    n = len(seq)
    for rate, copy in zip(rates, ema.models):
        # ema_n = r^n p0 + sum_i (1 - r) r^(n - i) p_i, i = 1..n
        expected = rate**n * p0 + sum((1 - rate) * rate ** (n - i) * p for i, p in enumerate(seq, start=1))
        torch.testing.assert_close(copy[0].weight, expected, rtol=1e-6, atol=1e-6)
        assert torch.equal(copy[1].weight, frozen)
    restored = EMA(model, rates)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.models[0][0].weight, ema.models[0][0].weight)
