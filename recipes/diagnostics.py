"""Does a base model read its mask as a layout or as a bag of classes? The demo recipe's and the
grid proxy's measurements, on held-out scenes, from one-step x̂₀ (no sampling):

- `gap`: x̂₀ agreement with the true mask given the true condition, minus given the same
  condition rotated 180° (same classes, other layout), at each t. A model that reads only which
  classes are present scores the same on both (gap 0);
- `own_cell`: the share of each image position's condition-token attention that falls on the
  token of its own cell (uniform: 1/L), in every attention block, at t = 900;
- `token_spread`: the condition tokens' variance across the positions of one scene over their
  variance across scenes at one position (≈ 0 when every position carries the same token);
- `zeroed`: x̂₀ agreement at t = 900 with the pooled vector zeroed, with the tokens zeroed, and
  with neither (which of the two paths the decoder reads the condition through).
"""

from __future__ import annotations

import numpy as np
import torch

from piti_cli.data.scenes import colour_accuracy
from piti_cli.diffusion.respace import make_process
from piti_cli.models.encoder import ConditionEmbedding
from piti_cli.models.grid import add_grid_position, token_grid
from piti_cli.models.layers import AttentionBlock

GAP_TIMES = (950, 900, 700)


def _x0(model, process, x0: torch.Tensor, t: int, emb: ConditionEmbedding, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + t)
    noise = torch.randn(x0.shape, generator=g)
    tt = torch.full((len(x0),), t, dtype=torch.long)
    x_t = process.q_sample(x0, tt, noise)
    out = model.decoder(x_t, process.network_t(tt), emb.pooled, emb.tokens).float()
    eps, _ = process.split_output(out, 3)
    return process.x0_from_eps(x_t, tt, eps).clamp(-1, 1)


def _attention_shares(model, process, x0, emb, seed: int) -> list[float]:
    """Own-cell share of the condition attention in each attention block at t = 900."""
    shares: list[float] = []

    def hook(block: AttentionBlock, args):
        x, context = args[0], args[1] if len(args) > 1 else None
        if context is None or block.encoder_kv is None:
            return
        b, c, h, w = x.shape
        heads = block.num_heads
        q, k, _ = block.qkv(block.norm(x).reshape(b, c, -1)).reshape(b, heads, 3 * (c // heads), -1).transpose(2, 3).chunk(3, -1)
        ek, _ = block.encoder_kv(context).reshape(b, heads, 2 * (c // heads), -1).transpose(2, 3).chunk(2, -1)
        if block.grid:
            q, ek = add_grid_position(q, ek, h, w)
        logits = torch.cat([ek, k], 2).float() @ q.float().transpose(2, 3) / (c // heads) ** 0.5  # (b, heads, keys, hw)
        attn = logits.softmax(2)[:, :, : ek.shape[2]]  # condition part
        grid = token_grid(ek.shape[2])
        rows = (torch.arange(h) * grid // h)[:, None].expand(h, w)
        cols = (torch.arange(w) * grid // w)[None].expand(h, w)
        own = (rows * grid + cols).reshape(-1)
        own_share = attn.gather(2, own[None, None, None].expand(b, heads, 1, -1)).squeeze(2) / attn.sum(2).clamp_min(1e-12)
        shares.append(float(own_share.mean()))

    handles = [m.register_forward_pre_hook(hook) for m in model.decoder.modules() if isinstance(m, AttentionBlock)]
    try:
        _x0(model, process, x0, 900, emb, seed)
    finally:
        for handle in handles:
            handle.remove()
    return shares


def layout_diagnostics(model, images: torch.Tensor, conds: torch.Tensor, masks: np.ndarray, seed: int = 0) -> dict:
    """images (N, 3, S, S) in [-1, 1] at the model's size, conds (N, C, s, s) at the encoder's
    size, masks (N, 256, 256) class ids. Returns the numbers of the module docstring."""
    model = model.eval()
    cfg = model.config.diffusion
    process = make_process(cfg.schedule, cfg.steps, None)
    rotated = torch.rot90(conds, 2, dims=(-2, -1))
    out: dict = {"gap": {}, "true": {}, "rotated": {}}
    with torch.no_grad():
        emb, emb_rot = model.encode(conds), model.encode(rotated)
        for t in GAP_TIMES:
            a = colour_accuracy(_x0(model, process, images, t, emb, seed), masks)
            r = colour_accuracy(_x0(model, process, images, t, emb_rot, seed), masks)
            out["true"][t], out["rotated"][t], out["gap"][t] = a, r, a - r
        out["own_cell"] = _attention_shares(model, process, images, emb, seed)
        out["uniform_share"] = 1.0 / emb.tokens.shape[-1]
        tokens = emb.tokens.float()  # (N, width, L)
        across_positions = tokens.var(dim=2).mean()
        across_scenes = tokens.var(dim=0).mean()
        out["token_spread"] = float(across_positions / across_scenes.clamp_min(1e-12))
        zero = lambda e, pooled, tokens: ConditionEmbedding(  # noqa: E731
            torch.zeros_like(e.pooled) if pooled else e.pooled, torch.zeros_like(e.tokens) if tokens else e.tokens)
        out["zeroed"] = {name: colour_accuracy(_x0(model, process, images, 900, zero(emb, p, k), seed), masks)
                         for name, p, k in (("none", False, False), ("pooled", True, False), ("tokens", False, True))}
    return out


def describe(d: dict) -> str:
    """One line for a log."""
    gaps = " / ".join(f"{d['gap'][t]:+.3f}" for t in GAP_TIMES)
    return (f"layout gap t = {' / '.join(map(str, GAP_TIMES))}: {gaps} (true {d['true'][950]:.3f}, rotated "
            f"{d['rotated'][950]:.3f} at 950); own-cell attention {min(d['own_cell']):.3f}–{max(d['own_cell']):.3f} "
            f"(uniform {d['uniform_share']:.3f}); token spread {d['token_spread']:.3f}; x̂₀ at 900 with pooled zeroed "
            f"{d['zeroed']['pooled']:.3f}, tokens zeroed {d['zeroed']['tokens']:.3f}, neither {d['zeroed']['none']:.3f}")

