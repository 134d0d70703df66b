"""What a training run is made of, built from its config: the model (fresh or from a
checkpoint), the data stream, and the upsampler's perceptual loss and critic."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from piti_cli.data.kinds import kind_for_pack
from piti_cli.data.reader import PackedInfo
from piti_cli.distributed import DistInfo
from piti_cli.errors import InputError
from piti_cli.models.config import ModelConfig
from piti_cli.models.piti import build_model
from piti_cli.train.aux_losses import Critic, PatchDiscriminator, make_perceptual
from piti_cli.train.config import TrainConfig
from piti_cli.train.data import TrainingStream
from piti_cli.train.state import initial_model


def model_for_run(cfg: TrainConfig, state: dict | None) -> tuple[nn.Module, ModelConfig]:
    """(model, config): the checkpoint's architecture when continuing (its weights are loaded
    later with the rest of the state), else the `--init` file; the decoder frozen for stage 1."""
    if state is not None:
        config = ModelConfig.from_dict(state["model_config"])
        model = build_model(config)
    else:
        kind = cfg.input_kind or kind_for_pack(PackedInfo(cfg.data).kind).name
        model, config = initial_model(cfg.init, preset=cfg.preset, glide=cfg.glide, input_kind=kind,
                                      family="glide" if cfg.stage == "pretrain" else "piti",
                                      condition_size=cfg.condition_size)
    if config.is_upsampler != cfg.upsampler:
        what = "an upsampler" if config.is_upsampler else "a base model"
        raise InputError(f"{cfg.init}: is {what}; use `piti {'upsample-train' if config.is_upsampler else 'finetune'}`")
    check_crop(cfg.crop_size, config)
    if config.family == "glide" and cfg.sample_every:
        raise InputError(f"--sample-every {cfg.sample_every}: sample grids are for PITI models (mask, sketch, depth conditions)")
    if cfg.stage == "encoder":
        model.decoder.requires_grad_(False)
    return model, config


def stream_for_run(cfg: TrainConfig, config: ModelConfig) -> TrainingStream:
    """The run's samples as the model takes them (sizes, channels, captions, low-res inputs)."""
    enc = config.encoder
    return TrainingStream(
        cfg.data, image_size=config.unet.image_size, condition_size=enc.input_size if enc else 0,
        condition_channels=enc.in_channels if enc else 0, seed=cfg.seed, uncond_p=cfg.uncond_p, flip=cfg.flip,
        data_fraction=cfg.data_fraction, low_res=config.is_upsampler, l0_mode=cfg.degrade_l0_mode,
        degradation=cfg.degradation, crop_size=cfg.crop_size,
        caption_length=config.text.context_length if config.text else 0,
    )


def auxiliaries(cfg: TrainConfig, config: ModelConfig, device: torch.device,
                info: DistInfo) -> tuple[nn.Module | None, Critic | None]:
    """The upsampler's perceptual loss (`cfg.perceptual`) and its PatchGAN critic with its own
    optimizer and generator; (None, None) for a base model."""
    if not config.is_upsampler:
        return None, None
    perceptual = make_perceptual(cfg.perceptual, cfg.perceptual_weights_file) if cfg.perceptual_weight > 0 else None
    critic = None
    if cfg.adv_weight > 0:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 17)
            disc = PatchDiscriminator().to(device)
        critic = Critic(disc, torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr),
                        torch.Generator().manual_seed(cfg.seed + 23), _all_reduce_grads if info.enabled else None)
    return (perceptual.to(device) if perceptual is not None else None), critic


def check_crop(crop: int, config: ModelConfig) -> None:
    """A crop must pass through every down-sampling of the UNet and match whole low-res pixels."""
    if not crop:
        return
    size = config.unet.image_size
    factor = 2 ** (len(config.unet.channel_mult) - 1)
    if crop > size or crop % factor or crop % (size // 64):
        raise InputError(f"--crop-size {crop}: must be at most {size} and a multiple of {factor} "
                         f"(the UNet halves the resolution {len(config.unet.channel_mult) - 1} times)")


def _all_reduce_grads(module: nn.Module) -> None:
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world
