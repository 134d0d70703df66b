import torch

from piti_cli.checkpoints.convert import load_model
from piti_cli.pipeline.cascade import StageSettings, sample_stage
from piti_cli.pipeline.edit import edit, invert


def _smooth_image(g):
    return torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g) * 1.6 - 0.8, size=64, mode="bilinear")


def test_inversion_then_ddim_regenerates_the_photo(tiny_mask_models):
    # A fresh decoder (GLIDE's zero-initialised output layer) predicts ε ≡ 0; then DDIM is an
    # exactly invertible map, so any mismatch between the inversion's and the sampler's
    # noise levels, timesteps or conditions shows up as a reconstruction error.
    model, _ = load_model(tiny_mask_models[0])
    with torch.no_grad():
        model.decoder.out[2].weight.zero_()
        model.decoder.out[2].bias.zero_()
    g = torch.Generator().manual_seed(0)
    image = _smooth_image(g)
    cond = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    settings = StageSettings(sampler="ddim", steps="20", guidance=1.0)
    x_t = invert(model, image, cond, settings)
    assert x_t.std() < 0.05 * image.std()  # ᾱ_T is tiny: the photo's signal is scaled away
    regenerated, _ = edit(model, cond, cond, settings, g, noise=x_t)
    assert torch.sqrt(((regenerated - image) ** 2).mean()) < 1e-5


def test_edit_holds_the_noise_fixed(tiny_mask_models):
    model, _ = load_model(tiny_mask_models[0])
    g = torch.Generator().manual_seed(1)
    cond = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    edited = cond.clone()
    edited[..., :16, :16] = -cond[..., :16, :16]
    settings = StageSettings(sampler="ddim", steps="8", guidance=1.5)
    noise = torch.randn(1, 3, 64, 64, generator=g)
    original, changed = edit(model, cond, edited, settings, g, noise=noise.clone())
    same, _ = edit(model, cond, cond, settings, g, noise=noise.clone())
    assert torch.equal(original, same)
    assert not torch.equal(original, changed)
    # The original equals a plain DDIM sample from that x_T (eta=0 ignores the generator).
    direct = sample_stage(model, cond, StageSettings(sampler="ddim", steps="8", guidance=1.5, clip_denoised=False),
                          torch.Generator().manual_seed(99), noise=noise.clone())
    assert torch.allclose(original, direct)


def test_blended_edit_keeps_the_rest_exactly_and_changes_the_region(tiny_mask_models):
    from piti_cli.pipeline.edit import changed_region

    model, _ = load_model(tiny_mask_models[0])
    g = torch.Generator().manual_seed(2)
    cond = torch.rand(1, 3, 256, 256, generator=g) * 2 - 1
    edited = cond.clone()
    edited[..., 96:160, 96:160] = -cond[..., 96:160, 96:160]
    settings = StageSettings(sampler="ddim", steps="8", guidance=1.5)
    noise = torch.randn(1, 3, 64, 64, generator=g)
    region = changed_region(cond, edited, 64)  # the 16² block of 4-px cells, grown by one pixel
    assert region.sum() == 18 * 18 and region[0, 0, 23:41, 23:41].all()
    free_original, free_edited = edit(model, cond, edited, settings, g, noise=noise.clone(), clip=True)
    original, changed = edit(model, cond, edited, settings, g, noise=noise.clone(), keep=1 - region, clip=True)
    assert torch.equal(original, free_original)  # the original run is the plain one
    outside = region.expand_as(original) == 0
    assert torch.equal(changed[outside], original[outside])  # the rest, exactly
    assert not torch.equal(changed[~outside], original[~outside])
    assert not torch.equal(free_edited[outside], original[outside])  # the paper's free runs drift there
