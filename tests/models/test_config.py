

def test_legacy_diffusion_keys_are_read_and_dropped():
    import pytest

    from piti_cli.models.config import PRESETS, ModelConfig

    data = PRESETS["piti-base-mask-tiny"].to_dict()
    data["diffusion"].update(learn_sigma=True, rescale_timesteps=True)  # as files written before 0.3 store it
    assert ModelConfig.from_dict(data) == PRESETS["piti-base-mask-tiny"]
    data["diffusion"]["learn_sigma"] = False
    with pytest.raises(ValueError, match="learn_sigma=False"):
        ModelConfig.from_dict(data)
