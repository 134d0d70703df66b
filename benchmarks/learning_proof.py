"""Learning proof: does `piti finetune` teach a small model to follow its condition?

Data: procedural scenes (`benchmarks/scenes.py`) whose colour mask determines the picture.
Model: `piti-base-mask-tiny` made from a randomly initialised tiny GLIDE file, trained with
the real training loop (stage `joint`, `high-noise` timesteps, in resumed chunks until the
time budget is spent) — the same run as the demo recipe's base model (`scene_base_config`).
Measure: sample held-out conditions with the untrained and the trained (EMA) model and count
the fraction of 64×64 pixels whose nearest class colour is the class under the mask
(chance ≈ 1/4; ground-truth pictures give the ceiling, below 1 only at blurred edges).

    python benchmarks/learning_proof.py --minutes 30 --out /tmp/piti_learning_proof
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scenes import CLASS_COLOURS, make_scenes, write_pack  # noqa: E402
from piti_cli.io_utils import atomic_write_text  # noqa: E402


def colour_accuracy(images: torch.Tensor, masks: np.ndarray) -> float:
    """images (B, 3, 64, 64) in [-1, 1]; masks (B, 256, 256) class ids."""
    rgb = ((images.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).double().numpy()
    dist = ((rgb[..., None, :] - CLASS_COLOURS[None, None, None]) ** 2).sum(-1)
    pred = dist.argmin(-1)
    step = masks.shape[-1] // images.shape[-1]
    small = masks[:, step // 2::step, step // 2::step]
    return float((pred == small).mean())


def scene_base_config(data, run_dir, init, *, batch_size: int = 8, lr: float = 5e-4, save_every: int = 50):
    """The training run of the learning proof and of the demo recipe's base model: joint
    training of a randomly initialised tiny model; the `high-noise` timestep sampler,
    because with uniform (or loss-second-moment) t a from-scratch model learns to ignore
    its condition (see `piti_cli.diffusion.timestep_samplers.HighNoiseSampler`)."""
    from piti_cli.train.config import TrainConfig

    return TrainConfig(
        data=str(data), run_dir=str(run_dir), init=str(init), preset="glide-base-tiny", input_kind="mask",
        stage="joint", batch_size=batch_size, lr=lr, ema_rates=(0.995,), uncond_p=0.1,
        timestep_sampler="high-noise", max_steps=0, log_every=10, save_every=save_every,
        keep_checkpoints=1, device="cpu", seed=0)


def sample(model, conds: torch.Tensor, sampler: str, steps: str, guidance: float, seed: int) -> torch.Tensor:
    from piti_cli.pipeline.cascade import StageSettings, sample_stage

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return sample_stage(model.eval(), conds, StageSettings(sampler=sampler, steps=steps, guidance=guidance), g)


def train_for(cfg, minutes: float, budget_file: Path, chunk: int, report=print) -> int:
    """Train in resumable chunks of `chunk` steps until `minutes` of training have been spent,
    counted across reruns in `budget_file`; returns the step reached."""
    from piti_cli.train.loop import train

    spent = json.loads(budget_file.read_text())["seconds"] if budget_file.exists() else 0.0
    step, resume = 0, Path(cfg.run_dir, "checkpoints").exists()
    while spent < minutes * 60:
        start = time.perf_counter()
        cfg.max_steps = (step or _latest_step(cfg.run_dir)) + chunk
        result = train(cfg, resume=resume)
        step, resume = result.step, True
        spent += time.perf_counter() - start
        atomic_write_text(budget_file, json.dumps({"seconds": spent, "step": step}))
        report(f"{Path(cfg.run_dir).name}: step {step}, loss {result.last_metrics.get('loss', float('nan')):.4f}, "
               f"{spent / 60:.1f}/{minutes:.0f} min")
    return step or _latest_step(cfg.run_dir)


def _latest_step(run_dir) -> int:
    from piti_cli.train.state import list_checkpoints

    found = list_checkpoints(run_dir)
    return found[-1][0] if found else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/piti_learning_proof")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--train-count", type=int, default=1024)
    ap.add_argument("--eval-count", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--sampler", default="ancestral", help="ancestral | ddim | dpmpp-2m")
    ap.add_argument("--steps", default="250", help="sampling respacing (piti sample's default: 250)")
    ap.add_argument("--guidance", type=float, default=3.0)
    args = ap.parse_args()

    from piti_cli.checkpoints.io import save_checkpoint
    from piti_cli.data.reader import PackedDataset
    from piti_cli.models.config import get_preset
    from piti_cli.models.piti import build_model
    from piti_cli.train.data import resize_condition, resize_image, to_unit
    from piti_cli.train.state import export_ema, initial_model
    from piti_cli.checkpoints.convert import load_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images, masks = make_scenes(args.train_count, seed=0)
    train_pack = write_pack(out / "scenes_train.h5", images, masks)
    ev_images, ev_masks = make_scenes(args.eval_count, seed=12345)
    eval_pack = write_pack(out / "scenes_eval.h5", ev_images, ev_masks)
    torch.manual_seed(0)
    glide = out / "glide-base-tiny-random.pt"
    save_checkpoint(glide, build_model(get_preset("glide-base-tiny")).state_dict())

    ds = PackedDataset(eval_pack, as_tensors=True)
    conds = torch.stack([resize_condition(ds[i]["condition"], 64) for i in range(len(ds))])
    truth = torch.stack([resize_image(to_unit(ev_images[i]), 64) for i in range(len(ds))])

    untrained, _ = initial_model(str(glide), preset="glide-base-tiny", input_kind="mask", glide=None)
    t0 = time.perf_counter()
    acc_untrained = colour_accuracy(sample(untrained, conds, args.sampler, args.steps, args.guidance, 1), ev_masks)
    sample_s = time.perf_counter() - t0

    run = out / "run"
    cfg = scene_base_config(train_pack, run, glide, batch_size=args.batch_size, lr=args.lr, save_every=args.chunk)
    step = train_for(cfg, args.minutes, out / "budget.json", args.chunk)
    train_minutes = json.loads((out / "budget.json").read_text())["seconds"] / 60

    exported, _, _ = export_ema(run, out / "piti-base-mask-tiny-scenes.safetensors")
    trained, _ = load_model(exported)
    acc_trained = colour_accuracy(sample(trained, conds, args.sampler, args.steps, args.guidance, 1), ev_masks)
    acc_truth = colour_accuracy(truth, ev_masks)
    print(f"learning proof: piti-base-mask-tiny, {step} steps x batch {args.batch_size} "
          f"({train_minutes:.1f} min CPU), sampling {args.sampler} {args.steps} guidance {args.guidance}, "
          f"{args.eval_count} held-out masks (sampling took {sample_s:.0f} s per model)")
    print(f"  pixels whose colour matches the class under the mask (chance 0.25):")
    print(f"    untrained  {acc_untrained:.3f}")
    print(f"    trained    {acc_trained:.3f}   ({acc_trained / max(acc_untrained, 1e-9):.2f}x untrained)")
    print(f"    real pictures (ceiling) {acc_truth:.3f}")
    print(f"  checkpoint: {exported}  run: {run}")


if __name__ == "__main__":
    main()
