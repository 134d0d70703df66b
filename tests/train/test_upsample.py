"""One upsampler step with the perceptual and adversarial losses on (aux_start=0)."""

import torch

from piti_cli.train import aux_losses, build
from piti_cli.train.loop import train
from piti_cli.train.state import initial_model, load_state
from tests.train.conftest import base_config


def test_upsampler_step_updates_generator_and_discriminator(scenes_pack, glide_upsample, tmp_path, monkeypatch):
    perceptual = aux_losses.VGGPerceptual(aux_losses.vgg19_conv22(pretrained=False))
    monkeypatch.setattr(build, "make_perceptual", lambda *_: perceptual)  # random VGG: no weights file needed
    cfg = base_config(scenes_pack, glide_upsample, tmp_path / "up", preset="glide-upsample-tiny", upsampler=True,
                      batch_size=2, max_steps=1, aux_start=0, uncond_p=0.0, timestep_sampler="uniform")
    init, _ = initial_model(str(glide_upsample), preset="glide-upsample-tiny", input_kind="mask", glide=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 17)
        disc0 = aux_losses.PatchDiscriminator().state_dict()
    result = train(cfg)
    assert {"perceptual", "adv", "d_loss"} <= set(result.last_metrics)
    assert result.last_metrics["perceptual"] > 0
    st = load_state(result.checkpoint)
    # every conv weight moves (biases right before an instance norm get no gradient)
    weights = [k for k in disc0 if k.endswith("weight")]
    assert weights and all(not torch.equal(disc0[k], st["disc"][k]) for k in weights)
    before = init.state_dict()
    assert not torch.equal(before["decoder.out.2.weight"], st["model"]["decoder.out.2.weight"])
    assert not torch.equal(before["encoder.cnn.conv1.weight"], st["model"]["encoder.cnn.conv1.weight"])


def test_wgan_gp_critic_loss_matches_a_direct_computation():
    torch.manual_seed(0)
    disc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))
    fake, real = torch.randn(3, 3, 2, 2), torch.randn(3, 3, 2, 2)
    g = torch.Generator().manual_seed(1)
    loss = aux_losses.critic_loss(disc, fake, real, g)
    eps = torch.rand(3, 1, 1, 1, generator=torch.Generator().manual_seed(1))
    w = disc[1].weight.detach()  # a linear critic's input gradient is its weight everywhere
    expected = disc(fake).mean() - disc(real).mean() + 10 * (w.norm() - 1) ** 2
    torch.testing.assert_close(loss, expected)
    assert eps.shape == (3, 1, 1, 1)


def test_upsampler_trains_on_crops_and_refuses_crops_that_break_the_unet(scenes_pack, glide_upsample, tmp_path):
    import pytest

    from piti_cli.errors import InputError

    cfg = base_config(scenes_pack, glide_upsample, tmp_path / "crop", preset="glide-upsample-tiny", upsampler=True,
                      batch_size=2, max_steps=1, uncond_p=0.0, timestep_sampler="uniform", perceptual="none",
                      crop_size=64)
    result = train(cfg)
    assert torch.isfinite(torch.tensor(result.last_metrics["loss"]))
    # the tiny upsampler halves 256² four times: a crop must be a multiple of 16
    bad = base_config(scenes_pack, glide_upsample, tmp_path / "bad", preset="glide-upsample-tiny", upsampler=True,
                      batch_size=2, max_steps=1, perceptual="none", crop_size=72)
    with pytest.raises(InputError, match="multiple of 16"):
        train(bad)
    with pytest.raises(InputError, match="crops are for the upsampler"):
        base_config(scenes_pack, glide_upsample, tmp_path / "base", crop_size=64)
