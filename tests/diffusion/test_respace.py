import numpy as np
import pytest
import torch

from piti_cli.diffusion.gaussian import GaussianDiffusion
from piti_cli.diffusion.respace import make_process, network_time, respace, space_timesteps
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
    t = network_time(p, torch.tensor([0, 5, 26]))
    assert t.dtype == torch.float32 and t.tolist() == [0.0, 111.0, 997.0]
    # respacing a respaced process keeps referring to the original steps
    p2 = respace(p, "ddim9")
    assert list(p2.timestep_map) == FAST27[::3]
    np.testing.assert_allclose(p2.alphas_cumprod, base.alphas_cumprod[FAST27[::3]], rtol=1e-12)


def test_network_time_rescales_other_step_counts():
    p = make_process("linear", 4000, "ddim4")
    assert p.timestep_map.tolist() == [0, 1000, 2000, 3000]
    assert p.network_t(torch.arange(4)).tolist() == [0.0, 250.0, 500.0, 750.0]
