"""The ≤ 15-minute proxy that gates each step of the demo's design (docs/demo-model.md).

One arm trains the tiny mask model from random weights on the demo's scenes, with the demo's
base run (`scene_base_config`: batch 8, high-noise t, bf16 where native, EMA 0.995), for
`--steps` steps or `--minutes`, whichever comes first, then measures on 32 held-out scenes the
layout diagnostics (`recipes.diagnostics`) and the sample agreement (DDIM 25, guidance 3):

    python -m recipes.grid_proxy --arm as-is --out runs/proxy
    python -m recipes.grid_proxy --arm grid --out runs/proxy
    python -m recipes.grid_proxy --arm grid-no-pooled --out runs/proxy

Arms: `as-is` (the tiny preset), `grid` (+ the shared grid position of
`piti_cli.models.grid`), `grid-no-pooled` (+ no pooled vector in the time embedding). Every arm
uses the same seed, scenes and steps; `--image-size` and `--condition-size` set the picture and
the token grid ((size/16)² tokens). The numbers go to OUT/ARM/result.json and one log line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from piti_cli.checkpoints.convert import load_model
from piti_cli.checkpoints.io import save_checkpoint
from piti_cli.data.reader import PackedDataset
from piti_cli.data.scenes import caption, colour_accuracy, layout_bound, make_scenes, write_pack
from piti_cli.io_utils import atomic_write_text
from piti_cli.models.config import ModelConfig, get_preset
from piti_cli.models.piti import build_model
from piti_cli.data.images import fit_condition
from piti_cli.train.data import model_image
from piti_cli.train.state import export_ema
from recipes.diagnostics import describe, layout_diagnostics
from recipes.harness import sample, scene_base_config, train_for

ARMS = {"as-is": {}, "grid": {"grid_attention": True},
        "grid-no-pooled": {"grid_attention": True, "pooled_condition": False}}


def arm_config(arm: str, image_size: int, condition_size: int) -> ModelConfig:
    base = get_preset("piti-base-mask-tiny")
    unet = dataclasses.replace(base.unet, image_size=image_size, **ARMS[arm])
    encoder = dataclasses.replace(base.encoder, input_size=condition_size)
    return dataclasses.replace(base, name=f"proxy-{arm}", unet=unet, encoder=encoder)


def scene_packs(out: Path, train_count: int = 1024, eval_count: int = 32) -> tuple[Path, Path]:
    packs = out / "scenes_train.h5", out / "scenes_eval.h5"
    for path, count, seed in zip(packs, (train_count, eval_count), (0, 12345)):
        if not path.exists():
            images, masks = make_scenes(count, seed=seed)
            write_pack(path, images, masks, captions=np.stack([caption(m) for m in masks]))
    return packs


def evaluate(model_file: Path, eval_pack: Path) -> dict:
    model, config = load_model(model_file)
    ds = PackedDataset(eval_pack, as_tensors=False)
    rows = [ds[i] for i in range(len(ds))]
    masks = np.stack([np.asarray(r["condition"]).squeeze() for r in rows])
    size, csize = config.unet.image_size, config.encoder.input_size
    images = torch.stack([model_image(r["image"], size) for r in rows])
    cond_ds = PackedDataset(eval_pack, as_tensors=True)
    conds = torch.stack([fit_condition(cond_ds[i]["condition"], csize) for i in range(len(ds))])
    result = layout_diagnostics(model, images, conds, masks)
    pictures = sample(model, conds, "ddim", "ddim25", 3.0, seed=1)
    result["sample_agreement"] = colour_accuracy(pictures, masks)
    grid = int(np.sqrt(config.encoder.num_tokens))
    result["bounds"] = {"majority": layout_bound(masks, 1, size), f"grid_{grid}": layout_bound(masks, grid, size)}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arm", choices=tuple(ARMS), required=True)
    ap.add_argument("--out", default="runs/proxy")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--condition-size", type=int, default=128, help="the mask's size at the encoder: (size/16)² tokens")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--minutes", type=float, default=13.0, help="time cap of the training")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    out = Path(args.out)
    run = out / f"{args.arm}-{args.image_size}px-c{args.condition_size}"
    run.mkdir(parents=True, exist_ok=True)
    train_pack, eval_pack = scene_packs(out)
    config = arm_config(args.arm, args.image_size, args.condition_size)
    init = run / "init.safetensors"
    if not init.exists():
        torch.manual_seed(0)
        save_checkpoint(init, build_model(config).state_dict(), config)
    cfg = scene_base_config(train_pack, run / "train", init, args.device, save_every=250)
    start = time.perf_counter()
    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True)  # noqa: E731
    step = train_for(cfg, args.minutes, run / "budget.json", 250, log, steps=args.steps)
    model_file, _, _ = export_ema(run / "train", run / "ema.safetensors")
    result = evaluate(model_file, eval_pack)
    result.update(arm=args.arm, steps=step, train_minutes=json.loads((run / "budget.json").read_text())["seconds"] / 60,
                  minutes=(time.perf_counter() - start) / 60)
    atomic_write_text(run / "result.json", json.dumps(result, indent=1) + "\n")
    log(f"{args.arm} ({args.image_size} px, {config.encoder.num_tokens} tokens, {step} steps, "
        f"{result['train_minutes']:.1f} min): {describe(result)}; sample agreement {result['sample_agreement']:.3f} "
        f"(bounds {', '.join(f'{k} {v:.3f}' for k, v in result['bounds'].items())})")


if __name__ == "__main__":
    main()
