"""Per-sample training terms for one microbatch.

Base model: the improved-DDPM hybrid loss (`piti_cli.diffusion.losses.hybrid_loss`:
MSE on ε + the rescaled variational bound that trains the learned variance).
Upsampler, from step `aux_start` on: plus ``perceptual_weight · P(x̂0, x0)`` and
``adv_weight · (−D(x̂0))`` on the clamped x0 prediction x̂0 = (x_t − √(1−ᾱ)ε̂)/√ᾱ, while
the discriminator takes one WGAN-GP step on (x̂0.detach(), x0) (the official order).
"""

from __future__ import annotations

from torch import Tensor, nn

from piti_cli.diffusion.losses import hybrid_loss
from piti_cli.train.aux_losses import Critic, generator_loss


def microbatch_terms(
    net: nn.Module,
    process,
    batch: dict[str, Tensor],
    t: Tensor,
    *,
    autocast,
    perceptual: nn.Module | None = None,
    perceptual_weight: float = 0.0,
    critic: Critic | None = None,
    adv_weight: float = 0.0,
    cdf: str = "tanh",
) -> dict[str, Tensor]:
    """Per-sample {"loss", "mse", "vb", ["perceptual", "adv", "d_loss"]} (float32); `cdf`: the
    Φ of the t = 0 term (`piti_cli.diffusion.losses.NORMAL_CDFS`)."""
    x0, noise = batch["image"], batch["noise"]
    x_t = process.q_sample(x0, t, noise)
    with autocast:
        if "tokens" in batch:  # a GLIDE model, pretrained on captions
            out = net(x_t, process.network_t(t), batch["tokens"], batch["token_mask"], batch.get("low_res"))
        else:
            out = net(x_t, process.network_t(t), batch["condition"], batch.get("low_res"))
    out = out.float()
    terms = hybrid_loss(process, out, x0, x_t, t, noise, cdf)
    if perceptual is None and critic is None:
        return terms
    eps, _ = process.split_output(out, x0.shape[1])
    x0_pred = process.x0_from_eps(x_t, t, eps).clamp(-1.0, 1.0)
    loss = terms["loss"]
    if perceptual is not None:
        with autocast:
            terms["perceptual"] = perceptual(x0_pred, x0).float() * perceptual_weight
        loss = loss + terms["perceptual"]
    if critic is not None:
        terms["d_loss"] = critic.step(x0_pred, x0).expand_as(loss)
        terms["adv"] = generator_loss(critic.disc, x0_pred) * adv_weight
        loss = loss + terms["adv"]
    terms["loss"] = loss
    return terms
