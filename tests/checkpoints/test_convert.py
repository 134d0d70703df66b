import torch

from piti_cli.checkpoints.convert import glide_to_piti, instantiate
from piti_cli.checkpoints.layout import compare, layout_of
from piti_cli.models.config import PRESETS
from piti_cli.models.piti import build_model

TEXT_KEYS = ("token_embedding.", "positional_embedding", "padding_embedding", "final_ln.", "transformer.")


def _glide_state(preset, seed=0):
    torch.manual_seed(seed)
    return {k: torch.randn_like(v) for k, v in build_model(PRESETS[preset]).state_dict().items()}


def test_glide_to_piti_keeps_every_decoder_tensor_and_drops_text():
    glide = _glide_state("glide-base-tiny")
    config, state = glide_to_piti(glide, PRESETS["glide-base-tiny"], "mask")
    assert config.unet == PRESETS["glide-base-tiny"].unet
    assert compare(layout_of(state), "piti-base-mask-tiny").exact
    kept = {k: v for k, v in glide.items() if not k.startswith(TEXT_KEYS)}
    assert "transformer_proj.weight" in kept  # kept although it starts like the text transformer
    for k, v in kept.items():
        assert torch.equal(state[f"decoder.{k}"], v), k
    decoder_keys = {k for k in state if k.startswith("decoder.")}
    assert decoder_keys == {f"decoder.{k}" for k in kept}
    model = instantiate(config, state)
    assert model.state_dict()["decoder.input_blocks.0.0.weight"].data_ptr() == state["decoder.input_blocks.0.0.weight"].data_ptr()


def test_new_encoder_is_initialised_and_seeded():
    glide = _glide_state("glide-upsample-tiny")
    _, a = glide_to_piti(glide, PRESETS["glide-upsample-tiny"], "depth-normal", seed=1)
    _, b = glide_to_piti(glide, PRESETS["glide-upsample-tiny"], "depth-normal", seed=1)
    _, c = glide_to_piti(glide, PRESETS["glide-upsample-tiny"], "depth-normal", seed=2)
    enc = [k for k in a if k.startswith("encoder.")]
    assert a["encoder.cnn.conv1.weight"].shape[1] == 6
    for k in enc:
        assert torch.isfinite(a[k]).all() and torch.equal(a[k], b[k])
    assert a["encoder.cnn.conv1.weight"].std() > 0
    assert not torch.equal(a["encoder.cnn.conv1.weight"], c["encoder.cnn.conv1.weight"])


def test_full_size_rule_counts(reference_dir):
    # The reference README: 197 text tensors dropped, 586 / 600 decoder tensors kept.
    for glide, dropped, kept in (("glide-base-64", 197, 586), ("glide-upsample-256", 197, 600)):
        with torch.device("meta"):
            state = build_model(PRESETS[glide]).state_dict()
        text = [k for k in state if k.startswith(TEXT_KEYS)]
        assert (len(text), len(state) - len(text)) == (dropped, kept)
