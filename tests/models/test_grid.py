"""The shared grid position (`UNetConfig.grid_attention`), checked against its closed form, and
the two demo departures off in every official preset."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from piti_cli.models.config import PRESETS, ModelConfig
from piti_cli.models.grid import add_grid_position, token_grid
from piti_cli.models.layers import AttentionBlock
from piti_cli.models.piti import build_model
from tests.models.test_forward import _reference_attention, _tiny


def _codes(rows: int, cols: int, grid: int, channels: int) -> np.ndarray:
    """The docstring's formula in float64: [cos ω y | sin ω y | cos ω x | sin ω x], ω_k =
    π(k + ½)/F, centres in units of the token grid's cells, scaled to unit RMS, zero-padded."""
    f = channels // 4
    omega = np.pi * (np.arange(f) + 0.5) / f
    out = np.zeros((rows * cols, channels))
    for i in range(rows):
        for j in range(cols):
            y, x = (i + 0.5) * grid / rows - 0.5, (j + 0.5) * grid / cols - 0.5
            code = np.concatenate([np.cos(omega * y), np.sin(omega * y), np.cos(omega * x), np.sin(omega * x)])
            out[i * cols + j, : 4 * f] = code * math.sqrt(channels / (2 * f))
    return out


@pytest.mark.parametrize("grid", [2, 4, 8, 16])
def test_codes_score_the_own_cell_highest(grid):
    """Σ_k cos(ω_k d) = 0 for integers 0 < |d| < 2F: each axis's half of a code is orthogonal to
    another row's (column's), so two cells score channels·([same row] + [same column])/2."""
    codes = _codes(grid, grid, grid, 32)
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    expected = 16.0 * ((rows[:, None] == rows[None]).astype(float) + (cols[:, None] == cols[None]))
    np.testing.assert_allclose(codes @ codes.T, expected, atol=1e-9)
    # every position of a 4G × 4G image map scores highest with the cell it lies in
    scores = _codes(4 * grid, 4 * grid, grid, 32) @ codes.T
    i, j = np.divmod(np.arange(16 * grid * grid), 4 * grid)
    assert (scores.argmax(1) == (i // 4) * grid + j // 4).all()


def test_add_grid_position_is_the_closed_form():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 6 * 10, 40, generator=g, dtype=torch.float64)  # 6 × 10 image, 40 channels
    k = torch.randn(2, 3, 16, 40, generator=g, dtype=torch.float64) * 3  # a 4 × 4 token grid
    q2, k2 = add_grid_position(q.float(), k.float(), 6, 10)
    rms_q = q.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()
    rms_k = k.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()
    torch.testing.assert_close(q2.double(), q + rms_q * torch.from_numpy(_codes(6, 10, 4, 40)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k2.double(), k + rms_k * torch.from_numpy(_codes(4, 4, 4, 40)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="square number"):
        add_grid_position(q.float(), k[:, :, :15].float(), 6, 10)
    assert token_grid(64) == 8


def test_attention_with_the_grid_is_the_reference_with_shifted_queries_and_condition_keys():
    torch.manual_seed(0)
    block = AttentionBlock(64, 16, 24, groups=8, grid=True)
    torch.nn.init.normal_(block.proj_out.weight, std=0.1)
    x, context = torch.randn(2, 64, 4, 4), torch.randn(2, 24, 4)

    class Shifted(torch.nn.Module):  # the reference's qkv and encoder_kv, with the codes added
        def __init__(self):
            super().__init__()
            self.num_heads, self.norm, self.proj_out = block.num_heads, block.norm, block.proj_out

        def qkv(self, h):
            out = block.qkv(h).reshape(2, 4, 3, 16, 16)  # (b, heads, q|k|v, ch, hw)
            q = out[:, :, 0].double()
            rms = q.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()
            out[:, :, 0] = (q + rms * torch.from_numpy(_codes(4, 4, 2, 16)).T).float()
            return out.reshape(2, 3 * 64, 16)

        def encoder_kv(self, c):
            out = block.encoder_kv(c).reshape(2, 4, 2, 16, 4)
            k = out[:, :, 0].double()
            rms = k.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()
            out[:, :, 0] = (k + rms * torch.from_numpy(_codes(2, 2, 2, 16)).T).float()
            return out.reshape(2, 2 * 64, 4)

    with torch.no_grad():
        torch.testing.assert_close(block(x, context), _reference_attention(Shifted(), x, context), rtol=1e-5, atol=1e-5)
        plain = AttentionBlock(64, 16, 24, groups=8)
        plain.load_state_dict(block.state_dict())
        assert not torch.allclose(block(x, context), plain(x, context), atol=1e-3)  # the option does something


def test_official_presets_keep_glide_attention_and_the_pooled_path():
    for name, config in PRESETS.items():
        assert not config.unet.grid_attention and config.unet.pooled_condition, name
    # a stored config without the fields (every file written before them) reads as off
    stored = PRESETS["piti-base-mask-tiny"].to_dict()
    for key in ("grid_attention", "pooled_condition"):
        del stored["unet"][key]
    assert ModelConfig.from_dict(stored) == PRESETS["piti-base-mask-tiny"]


def test_without_the_pooled_path_the_output_ignores_the_pooled_vector():
    model = _tiny()
    off = build_model(dataclasses.replace(model.config, unet=dataclasses.replace(model.config.unet, pooled_condition=False)))
    off.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(1, 3, 64, 64, generator=g), torch.tensor([500.0])
    tokens = torch.randn(1, 64, 16, generator=g)
    pooled_a, pooled_b = torch.randn(1, 64, generator=g), torch.randn(1, 64, generator=g)
    with torch.no_grad():
        assert torch.equal(off.decoder(x, t, pooled_a, tokens), off.decoder(x, t, pooled_b, tokens))
        assert not torch.equal(model.decoder(x, t, pooled_a, tokens), model.decoder(x, t, pooled_b, tokens))


def test_grid_rows_do_not_depend_on_their_batch():
    model = _tiny()
    grid = build_model(dataclasses.replace(model.config, unet=dataclasses.replace(model.config.unet, grid_attention=True)))
    grid.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(2)
    x, cond = torch.randn(3, 3, 64, 64, generator=g), torch.randn(3, 3, 64, 64, generator=g) * torch.tensor([1.0, 5.0, 0.1])[:, None, None, None]
    t = torch.tensor([100.0, 500.0, 900.0])
    with torch.no_grad():
        together = grid(x, t, cond)
        for i in range(3):
            torch.testing.assert_close(grid(x[i:i + 1], t[i:i + 1], cond[i:i + 1]), together[i:i + 1], rtol=1e-4, atol=1e-5)
