import numpy as np
import pytest
import torch

from piti_cli.diffusion.gaussian import GaussianDiffusion
from piti_cli.diffusion.respace import make_process, respace, space_timesteps, truncate
from piti_cli.diffusion.schedules import get_beta_schedule

FAST27 = [0, 22, 44, 66, 88, 111, 133, 155, 177, 199, 200, 222, 244, 266, 288, 311, 333, 355, 377, 399,
          400, 500, 599, 600, 799, 800, 997]


def test_fast27_exact():
    assert space_timesteps(1000, "fast27") == FAST27


def test_sections():
    steps = space_timesteps(1000, "10,10,3,2,2")
    assert len(steps) == 27 and steps[-1] == 999 and steps[0] == 0
    assert space_timesteps(1000, [10, 10, 3, 2, 2]) == steps
    assert sorted(set(steps) - {999} | {997}) == FAST27


def test_single_section_and_ddim():
    s250 = space_timesteps(1000, "250")
    assert len(s250) == 250 and s250[0] == 0 and s250[-1] == 999
    d50 = space_timesteps(1000, "ddim50")
    assert d50 == list(range(0, 1000, 20))  # 50 steps, 0 .. 980
    assert space_timesteps(1000, "") == list(range(1000))
    assert space_timesteps(1000, "100")[:3] == [0, 10, 20]


def test_bad_specs():
    with pytest.raises(ValueError):
        space_timesteps(1000, "ddim600")  # strides 1 and 2 give 1000 and 500 steps
    with pytest.raises(ValueError):
        space_timesteps(10, "20")
    with pytest.raises(ValueError):
        space_timesteps(1000, "fast")


def test_respaced_alpha_bar_and_network_time():
    base = GaussianDiffusion(get_beta_schedule("squaredcos_cap_v2", 1000))
    p = respace(base, "fast27")
    np.testing.assert_allclose(p.alphas_cumprod, base.alphas_cumprod[FAST27], rtol=1e-12)
    assert list(p.timestep_map) == FAST27
    t = p.network_t(torch.tensor([0, 5, 26]))
    assert t.dtype == torch.float32 and t.tolist() == [0.0, 111.0, 997.0]
    # respacing a respaced process keeps referring to the original steps
    p2 = respace(p, "ddim9")
    assert list(p2.timestep_map) == FAST27[::3]
    np.testing.assert_allclose(p2.alphas_cumprod, base.alphas_cumprod[FAST27[::3]], rtol=1e-12)


def test_network_time_rescales_other_step_counts():
    p = make_process("linear", 4000, "ddim4")
    assert p.timestep_map.tolist() == [0, 1000, 2000, 3000]
    assert p.network_t(torch.arange(4)).tolist() == [0.0, 250.0, 500.0, 750.0]


def glide_rule(n, counts):
    """GLIDE's respacing, restated: per section a float position that starts at 0 and grows by
    (size − 1)/(count − 1) after each kept step, kept as round(position)."""
    from itertools import accumulate, repeat

    kept, offset = set(), 0
    for k, count in enumerate(counts):
        size = n // len(counts) + (k < n % len(counts))
        stride = (size - 1) / (count - 1) if count > 1 else 1.0
        kept |= {offset + round(p) for p in accumulate(repeat(stride, count - 1), initial=0.0)} if count else set()
        offset += size
    return sorted(kept)


def product_rule(n, counts):
    """The per-step product round(j · stride) piti used before; equal to GLIDE's for the presets."""
    kept, offset = set(), 0
    for k, count in enumerate(counts):
        size = n // len(counts) + (k < n % len(counts))
        stride = (size - 1) / (count - 1) if count > 1 else 1.0
        kept |= {offset + round(j * stride) for j in range(count)}
        offset += size
    return sorted(kept)


def test_every_k_follows_glide_rule():
    differ = 0
    for k in range(1, 1001):
        assert space_timesteps(1000, str(k)) == glide_rule(1000, [k]), k
        differ += glide_rule(1000, [k]) != product_rule(1000, [k])
    assert differ == 278  # the rule change is real (issue 13) …
    assert 499 in space_timesteps(1000, "21") and 500 not in space_timesteps(1000, "21")  # 10 · 49.95 summed


@pytest.mark.parametrize("counts", [[10, 10, 3, 2, 2], [7, 21, 33], [1, 1, 1], [250, 3], [5, 0, 5], [97, 13, 61, 40]])
def test_section_lists_follow_glide_rule(counts):
    spec = ",".join(map(str, counts))
    assert space_timesteps(1000, spec) == glide_rule(1000, counts)
    assert space_timesteps(4000, spec) == glide_rule(4000, counts)


def test_presets_in_use_do_not_move():
    for spec in ("250", "100", "50", "27", "25", "20", "10", "10,10,3,2,2"):
        counts = [int(c) for c in spec.split(",")]
        assert space_timesteps(1000, spec) == product_rule(1000, counts) == glide_rule(1000, counts)
    old_fast27 = sorted(set(product_rule(1000, [10, 10, 3, 2, 2])) - {999} | {997})
    assert space_timesteps(1000, "fast27") == old_fast27 == FAST27
    assert space_timesteps(1000, "ddim25") == list(range(0, 1000, 40))
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))


def test_truncate_keeps_the_steps_at_or_below_t_and_their_alpha_bars():
    full = GaussianDiffusion(get_beta_schedule("linear", 1000))
    fast = respace(full, "fast27")
    low = truncate(fast, 500)
    assert list(low.timestep_map) == [t for t in FAST27 if t <= 500]  # 22 steps, the top one at 500
    np.testing.assert_allclose(low.alphas_cumprod, full.alphas_cumprod[low.timestep_map], rtol=1e-12)
    np.testing.assert_array_equal(low.posterior_variance, fast.posterior_variance[:22])
    assert low.original_num_steps == 1000
    assert list(truncate(fast, 499).timestep_map) == FAST27[:21]
    with pytest.raises(ValueError, match="no step at t <= -1"):
        truncate(fast, -1)
