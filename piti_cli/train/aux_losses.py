"""The upsampler's extra losses on the clamped x0 prediction: perceptual and adversarial.

Perceptual ("vgg", as in the paper): squared difference of VGG-19 features up to conv2_2
(the first 8 layers of `features`), inputs mapped from [-1, 1] to [0, 1] and normalised
with the ImageNet mean/std, averaged per sample; the target side carries no gradient.
Alternatively "lpips" (the lpips package's distance).

Adversarial: a PatchGAN discriminator (4×4 convs, 64 channels doubling to 512, instance
norm without affine, LeakyReLU 0.2, one-channel patch map) trained with WGAN-GP
(critic loss E[D(fake)] − E[D(real)] + 10 · E[(‖∇D(x̂)‖₂ − 1)²] on random interpolates x̂),
Adam lr 1e-5; the generator's per-sample loss is −mean D(fake).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torchvision.models import VGG19_Weights, vgg19

from piti_cli.errors import InputError, OfflineError, brief

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGPerceptual(nn.Module):
    """Per-sample mean squared VGG-19 conv2_2 feature distance (frozen network)."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _feats(self, x: Tensor) -> Tensor:
        return self.features(((x + 1.0) / 2.0 - self.mean) / self.std)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            ref = self._feats(target.detach())
        return ((self._feats(pred) - ref) ** 2).flatten(1).mean(1)


def vgg19_conv22(weights_file: str | None = None, pretrained: bool = True) -> nn.Module:
    """The first 8 layers of torchvision's VGG-19 (through conv2_2), ImageNet weights from
    `weights_file`, torchvision's cache/download, or random (`pretrained=False`, for tests)."""
    net = vgg19(weights=None)
    if weights_file:
        try:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as err:  # a pickle with code, another network, broken bytes, no such file
            raise InputError(f"--perceptual-weights {weights_file}: not a torchvision VGG-19 state dict "
                             f"({type(err).__name__}: {brief(str(err), 100)})") from None
    elif pretrained:
        try:
            net.load_state_dict(VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False))
        except Exception as err:  # no network, no cache
            raise OfflineError(
                f"VGG-19 ImageNet weights are not cached and cannot be downloaded ({type(err).__name__}); "
                "pass --perceptual-weights FILE or --perceptual none"
            ) from None
    return nn.Sequential(*list(net.features)[:8])


class LPIPSPerceptual(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.net(pred, target.detach()).flatten(1).mean(1)


def make_perceptual(kind: str, weights_file: str | None = None) -> nn.Module | None:
    if kind == "none":
        return None
    if kind == "vgg":
        return VGGPerceptual(vgg19_conv22(weights_file))
    import lpips  # only for --perceptual lpips: the package pulls in its own backbones

    try:
        return LPIPSPerceptual(lpips.LPIPS(net="vgg", verbose=False))
    except Exception as err:
        raise OfflineError(f"LPIPS backbone weights cannot be loaded ({type(err).__name__}); use --perceptual vgg|none") from None


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 64, layers: int = 3):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = width
        for i in range(1, layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            seq += [nn.Conv2d(ch, out, 4, stride, 1, bias=True), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2)]
            ch = out
        seq.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*seq)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def critic_loss(disc: nn.Module, fake: Tensor, real: Tensor, generator: torch.Generator | None = None,
                gp_weight: float = 10.0) -> Tensor:
    """WGAN-GP critic loss (scalar) for detached fakes."""
    fake = fake.detach()
    loss = disc(fake).mean() - disc(real).mean()
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device="cpu").to(real)
    hat = (fake * (1 - eps) + real * eps).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(hat).sum(), hat, create_graph=True)
    return loss + gp_weight * ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def generator_loss(disc: nn.Module, fake: Tensor) -> Tensor:
    """Per-sample −mean D(fake); the discriminator's parameters get no gradient."""
    disc.requires_grad_(False)
    try:
        return -disc(fake).flatten(1).mean(1)
    finally:
        disc.requires_grad_(True)



@dataclass
class Critic:
    """The discriminator, its optimizer and generator, and how to average its gradients
    across processes (`all_reduce(module)`, None when alone)."""

    disc: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    all_reduce: Callable[[nn.Module], None] | None = None

    def step(self, fake: Tensor, real: Tensor) -> Tensor:
        """One WGAN-GP step on (fake, real); returns the critic loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = critic_loss(self.disc, fake.float(), real.float(), self.generator)
        loss.backward()
        if self.all_reduce is not None:
            self.all_reduce(self.disc)
        self.optimizer.step()
        return loss.detach()
