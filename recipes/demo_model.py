"""PITI in miniature: the bundled demo models (piti-demo-base, piti-demo-upsample), made the
paper's way — pretrain a tiny GLIDE on captions, convert it, finetune in two stages — with the
ablation the paper reports (the same finetuning from random weights).

One command, resumable (rerun it after an interruption: finished phases are skipped, training
continues from its last checkpoint and keeps its time budget, measurements are cached):

    python -m recipes.demo_model                       # 2-core CPU: about 100 minutes
    python -m recipes.demo_model --scale 0.05 --out /tmp/demo --weights /tmp/demo/weights  # a quick look
    python -m recipes.demo_model --device cuda --out runs/demo-gpu --weights runs/demo-gpu/weights
                                                       # the same minutes on a GPU: many more steps

Phases (minutes of training on a 2-core CPU, `--scale` multiplies them all):

1. scenes (`piti_cli.data.scenes`): 1024 for training, 32 held out, each with a caption — the
   class names of a 4 × 4 grid of the scene, the tiny text encoder's 16 tokens;
2. pretraining, GLIDE's way (`--stage pretrain`: a GLIDE model on captions, text transformer
   included): the tiny base (`glide-base-tiny`) and the tiny upsampler (`glide-upsample-tiny`);
3. GLIDE → PITI, as users do it with `base.pt`: the pretrained tiny GLIDE is converted (decoder
   kept, text side replaced by a fresh mask encoder), stage 1 trains the encoder alone
   (decoder frozen), stage 2 everything;
4. the ablation: the same finetuning budget (stage 1 + stage 2 minutes, all of it joint) from
   a randomly initialised decoder;
5. `upsample-train` from the pretrained tiny upsampler (BSR degradations, PatchGAN);
6. export (EMA), example masks, manifest sha256s;
7. evaluation with the README's first command's settings, on the 32 held-out masks:
   mask agreement (pixels whose nearest class colour is the class under the mask) at 64 and
   256 px, the colour the pictures keep, `piti edit` on an example, and the ablation.

`runs/demo/report.json` holds every number and each phase's minutes; the log prints them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from piti_cli.checkpoints.convert import load_model
from piti_cli.checkpoints.io import save_checkpoint
from piti_cli.checkpoints.registry import MANIFEST, sha256_file
from piti_cli.data.images import read_image, to_unit
from piti_cli.data.reader import PackedDataset
from piti_cli.data.scenes import (
    CLASS_COLOURS, MASK_COLOURS, caption, colour_accuracy, colour_kept, layout_bound, make_scenes, render,
    write_pack,
)
from piti_cli.io_utils import atomic_write_text
from piti_cli.models.config import get_preset
from piti_cli.models.piti import build_model
from piti_cli.diffusion import samplers
from piti_cli.diffusion.guidance import classifier_free
from piti_cli.diffusion.respace import make_process
from piti_cli.models.unet import UNet
from piti_cli.pipeline.cascade import BASE_DEFAULTS, UPSAMPLE_DEFAULTS
from piti_cli.pipeline.edit import run_edit
from piti_cli.pipeline.sample import SampleJob, run_sample
from piti_cli.train.config import TrainConfig
from piti_cli.train.data import model_condition, model_image
from piti_cli.train.state import export_ema
from recipes.harness import sample, scene_base_config, train_for

REPO = Path(__file__).resolve().parents[1]
EVAL_COUNT = 32
# The README's first command:
# `piti sample --cond examples/mask --out samples --guidance 8 --steps 50 --upsample-start 300`
# (chosen on the bundled models, 32 held-out masks, fp32: agreement at 256 px 0.681 and colour
# kept 0.92 in 0.59 of the time of 100 base steps and a start at t = 500, which score 0.681
# and 0.91; 0.621 and 0.52 at guidance 3 from pure noise; docs/demo-model.md)
README_BASE = dataclasses.replace(BASE_DEFAULTS, guidance=8.0, steps="50")
README_UPSAMPLE = dataclasses.replace(UPSAMPLE_DEFAULTS, start=300)
MINUTES = {  # training minutes per phase on a 2-core CPU
    "pretrain_base": 22.0, "pretrain_upsample": 18.0, "stage1": 4.0, "stage2": 18.0, "upsample": 10.0,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def upsample_run(data, run_dir, init, device: str = "cpu", **changes) -> TrainConfig:
    """The upsampler's runs: random 128² crops (a quarter of the cost of whole 256² pictures;
    the network is convolutional apart from its 16² attention), BSR-degraded 32² low-res
    inputs, fp32 — at t near 999 the linear schedule's x0 = (x_t − √(1−ᾱ)ε̂)/√ᾱ multiplies
    an ε error by up to 150, more than bf16's 3 significant digits leave room for."""
    cfg = TrainConfig(
        data=str(data), run_dir=str(run_dir), init=str(init), input_kind="mask", stage="joint", upsampler=True,
        batch_size=4, lr=2e-4, ema_rates=(0.995,), uncond_p=0.0, timestep_sampler="uniform", perceptual="none",
        max_steps=0, log_every=10, save_every=50, keep_checkpoints=1, device=device, seed=0, crop_size=128)
    return dataclasses.replace(cfg, **changes)


# ---------------------------------------------------------------------------- measurements

def base_agreement(model_file: Path, eval_pack: Path, masks: np.ndarray, count: int | None = None) -> float:
    """64-px agreement of a base model alone (fp32), with the README command's base settings,
    on the first `count` held-out masks (default all)."""
    model, _ = load_model(model_file)
    ds = PackedDataset(eval_pack, as_tensors=True)
    n = len(ds) if count is None else min(count, len(ds))
    conds = torch.stack([model_condition(ds[i]["condition"], model.config.encoder.input_size) for i in range(n)])
    pictures = sample(model, conds, README_BASE.sampler, README_BASE.steps, README_BASE.guidance, seed=1)
    return colour_accuracy(pictures, masks[:n])


def caption_agreement(glide_file: Path, masks: np.ndarray) -> float:
    """64-px agreement of the pretrained tiny GLIDE sampled from the held-out scenes' captions
    (the 4 × 4 grid of class names; the README command's base sampler and guidance, the empty
    caption as the null input): what pretraining alone knows of the layout."""
    model, _ = load_model(glide_file)
    tokens = torch.from_numpy(np.stack([caption(m) for m in masks]).astype(np.int64))
    ctx = model.model_config.text.context_length
    tokens = torch.cat([tokens, torch.zeros(len(masks), ctx - tokens.shape[1], dtype=torch.long)], 1)
    given = torch.arange(ctx)[None].expand(len(masks), -1) < len(caption(masks[0]))
    with torch.no_grad():
        emb = model.encode_text(torch.cat([tokens, torch.zeros_like(tokens)]),
                                torch.cat([given, torch.zeros_like(given)]))
        pair = lambda x, t: UNet.forward(model, x, t, emb.pooled, emb.tokens).float()  # noqa: E731
        denoiser = classifier_free(pair, README_BASE.guidance)
        process = make_process(model.model_config.diffusion.schedule, model.model_config.diffusion.steps,
                               README_BASE.steps)
        pictures = samplers.sample_ancestral(denoiser, process, (len(masks), 3, 64, 64),
                                             torch.Generator().manual_seed(1))
    return colour_accuracy(pictures, masks)


def end_to_end(eval_pack: Path, base_file: Path, up_file: Path, folder: Path, images: np.ndarray,
               masks: np.ndarray) -> dict:
    """The README command's settings through `piti sample` on the held-out masks (256-px PNGs)."""
    job = SampleJob(cond=str(eval_pack), out=folder, base=str(base_file), upsampler=str(up_file),
                    base_settings=README_BASE, upsample_settings=README_UPSAMPLE, save_low_res=True,
                    precision="auto", overwrite=True)
    result = run_sample(job)
    files = sorted(result.images)
    pictures = torch.stack([torch.from_numpy(to_unit(read_image(f, "RGB"))) for f in files])
    low = torch.stack([torch.from_numpy(to_unit(read_image(f.parent / "64" / f.name, "RGB"))) for f in files])
    originals = torch.stack([torch.from_numpy(to_unit(im)) for im in images])
    each = [colour_accuracy(pictures[i:i + 1], masks[i:i + 1]) for i in range(len(files))]
    out = {"agreement_256": float(np.mean(each)), "agreement_each": each, "precision": result.precision,
           "colour_kept_256": colour_kept(pictures, originals, masks),
           "seconds_per_image": result.seconds / max(1, len(files)),
           "agreement_64": colour_accuracy(low, masks),
           "colour_kept_64": colour_kept(low, torch.stack([model_image(im, 64) for im in images]), masks)}
    return out


def edit_fractions(example: Path, base_file: Path, up_file: Path, folder: Path) -> dict:
    """`piti edit` on an example mask with a 96² square of another class painted in its middle:
    which share of the edited region takes the new class, which share of the rest changes."""
    mask_rgb = read_image(example, "RGB")
    labels = np.argmin(((mask_rgb[..., None, :].astype(int) - MASK_COLOURS[None, None].astype(int)) ** 2).sum(-1), -1)
    size = labels.shape[0]
    lo, hi = size // 2 - size * 3 // 16, size // 2 + size * 3 // 16
    centre = labels[lo:hi, lo:hi]
    new_class = int((np.bincount(centre.ravel(), minlength=4).argmax() + 1) % 4)
    edited = labels.copy()
    edited[lo:hi, lo:hi] = new_class
    folder.mkdir(parents=True, exist_ok=True)
    edited_file = folder / "edited_mask.png"
    Image.fromarray(MASK_COLOURS[edited]).save(edited_file)
    written = run_edit(str(example), str(edited_file), folder, base=str(base_file), upsampler=str(up_file),
                       device="cpu", precision="auto")
    pictures = {p.stem: read_image(p, "RGB").astype(np.float64) for p in written}

    def classes(rgb):
        return ((rgb[..., None, :] - CLASS_COLOURS[None, None]) ** 2).sum(-1).argmin(-1)
    before, after = classes(pictures["original"]), classes(pictures["edited"])
    region = edited != labels
    return {"mask_changed": float(region.mean()), "new_class": new_class,
            "region_took_new_class": float((after[region] == new_class).mean()),
            "region_changed": float((after[region] != before[region]).mean()),
            "rest_changed": float((after[~region] != before[~region]).mean())}


# ---------------------------------------------------------------------------- the recipe

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "runs" / "demo"), help="work folder (resumable)")
    ap.add_argument("--weights", default=str(REPO / "weights"), help="where the exported files go")
    ap.add_argument("--examples", default=str(REPO / "examples" / "mask"))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every phase's training minutes")
    ap.add_argument("--device", default="cpu",
                    help="where the training phases run (e.g. cuda); the evaluation runs on the CPU, as the "
                         "README command does")
    ap.add_argument("--train-count", type=int, default=1024)
    ap.add_argument("--eval-count", type=int, default=EVAL_COUNT, help="held-out masks (the report uses 32)")
    ap.add_argument("--chunk", type=int, default=50, help="training steps between checkpoints")
    ap.add_argument("--until", choices=tuple(MINUTES) + ("ablation",), default=None,
                    help="stop after this training phase (rerun without it to go on)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    minutes = {k: v * args.scale for k, v in MINUTES.items()}
    out, weights = Path(args.out), Path(args.weights)
    out.mkdir(parents=True, exist_ok=True)
    report_file = out / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}

    def save_report():
        atomic_write_text(report_file, json.dumps(report, indent=1) + "\n")

    # 1. scenes with captions
    train_pack, eval_pack = out / "scenes_train.h5", out / "scenes_eval.h5"
    for path, count, seed in ((train_pack, args.train_count, 0), (eval_pack, args.eval_count, 12345)):
        if not path.exists():
            images, masks = make_scenes(count, seed=seed)
            write_pack(path, images, masks, captions=np.stack([caption(m) for m in masks]))
    ev_images, ev_masks = make_scenes(args.eval_count, seed=12345)
    log("scene packs ready")

    # random tiny GLIDE files: the start of pretraining, and of the ablation
    glide = {}
    for name, seed in (("glide-base-tiny", 0), ("glide-upsample-tiny", 1)):
        glide[name] = out / f"{name}-random.pt"
        if not glide[name].exists():
            torch.manual_seed(seed)
            save_checkpoint(glide[name], build_model(get_preset(name)).state_dict())

    def phase(name: str, cfg: TrainConfig) -> int:
        cfg.save_every = args.chunk
        step = train_for(cfg, minutes[name], out / f"{name}_budget.json", args.chunk, log)
        spent = json.loads((out / f"{name}_budget.json").read_text())["seconds"] if (out / f"{name}_budget.json").exists() else 0.0
        report.setdefault("phases", {})[name] = {"steps": step, "minutes": round(spent / 60, 1)}
        save_report()
        if name == args.until:
            log(f"stopped after {name} (--until); rerun without --until to go on")
            raise SystemExit(0)
        return step

    # 2. pretraining: tiny GLIDEs on captions (flips off: a caption names where things are);
    #    the upsampler sees the clean 4× bicubic reduction, PITI's BSR degradations come later
    dev = args.device
    phase("pretrain_base", scene_base_config(train_pack, out / "pretrain_base", glide["glide-base-tiny"], dev,
                                             preset="glide-base-tiny", input_kind=None, stage="pretrain",
                                             flip=False))
    phase("pretrain_upsample", upsample_run(train_pack, out / "pretrain_upsample", glide["glide-upsample-tiny"], dev,
                                            preset="glide-upsample-tiny", input_kind=None, stage="pretrain",
                                            flip=False, degradation="bicubic"))
    # 3. GLIDE → PITI: stage 1 (the new encoder alone, the pretrained decoder frozen), stage 2
    phase("stage1", scene_base_config(train_pack, out / "stage1", out / "pretrain_base", dev, stage="encoder",
                                      lr=1e-3, ema_rates=(0.99,)))
    phase("stage2", scene_base_config(train_pack, out / "stage2", out / "stage1", dev, lr=3e-4))
    # 4. the ablation: the same finetuning minutes from a random decoder, all of them joint
    minutes["ablation"] = minutes["stage1"] + minutes["stage2"]
    phase("ablation", scene_base_config(train_pack, out / "ablation", glide["glide-base-tiny"], dev,
                                        preset="glide-base-tiny"))
    # 5. the upsampler, PITI's way, from the pretrained tiny GLIDE upsampler
    phase("upsample", upsample_run(train_pack, out / "upsample", out / "pretrain_upsample", dev,
                                   timestep_sampler="high-noise", adv_weight=0.01, aux_start=0))

    # 6. export, examples, manifest
    weights.mkdir(parents=True, exist_ok=True)
    base_file, _, _ = export_ema(out / "stage2", weights / "piti_demo_base.safetensors")
    up_file, _, _ = export_ema(out / "upsample", weights / "piti_demo_upsample.safetensors")
    ablation_file, _, _ = export_ema(out / "ablation", out / "ablation_base.safetensors")
    pretrained_file, _, _ = export_ema(out / "pretrain_base", out / "pretrained_glide_base.safetensors")
    stage1_file, _, _ = export_ema(out / "stage1", out / "stage1_base.safetensors")
    examples = Path(args.examples)
    examples.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        Image.fromarray(MASK_COLOURS[ev_masks[i]]).save(examples / f"scene_{i}.png")
    register(weights, base_file, up_file)
    log(f"exported {base_file} and {up_file}")

    # 7. evaluation, cached per weight file it depends on
    stamps = {p: sha256_file(p)[:16] for p in (base_file, up_file, ablation_file, pretrained_file, stage1_file)}

    def measured(name: str, depends_on: tuple, compute):
        stamp = "+".join(stamps[p] for p in depends_on)
        entry = report.get("eval", {}).get(name)
        if not isinstance(entry, dict) or entry.get("weights") != stamp:
            start = time.perf_counter()
            report.setdefault("eval", {})[name] = {"weights": stamp, "value": compute(),
                                                   "minutes": round((time.perf_counter() - start) / 60, 1)}
            save_report()
        return report["eval"][name]["value"]

    e2e = measured("end_to_end", (base_file, up_file),
                   lambda: end_to_end(eval_pack, base_file, up_file, out / "eval_samples", ev_images, ev_masks))
    log(f"end to end (README settings, {len(ev_masks)} held-out masks): agreement {e2e['agreement_256']:.3f} at 256 px "
        f"(lowest {min(e2e['agreement_each']):.3f}; examples {', '.join(f'{a:.3f}' for a in e2e['agreement_each'][:4])}), "
        f"{e2e['agreement_64']:.3f} at 64 px; colour kept {e2e['colour_kept_256']:.2f} "
        f"(64 px {e2e['colour_kept_64']:.2f}); {e2e['seconds_per_image']:.1f} s per image")
    ablation = measured("ablation_64", (ablation_file,), lambda: base_agreement(ablation_file, eval_pack, ev_masks))
    finetuned = measured("finetuned_64", (base_file,), lambda: base_agreement(base_file, eval_pack, ev_masks))
    after_stage1 = measured("stage1_64_first8", (stage1_file,),
                            lambda: base_agreement(stage1_file, eval_pack, ev_masks, count=8))
    log(f"ablation, base alone at 64 px (fp32): pretrained then finetuned {finetuned:.3f} (after stage 1, "
        f"the encoder alone, first 8 masks: {after_stage1:.3f}), the same finetuning from random weights {ablation:.3f}")
    captions = measured("pretrained_captions_64_first8", (pretrained_file,),
                        lambda: caption_agreement(pretrained_file, ev_masks[:8]))
    log(f"the pretrained tiny GLIDE alone, sampled from the captions (4 × 4 class names), first 8 masks: "
        f"{captions:.3f} at 64 px")
    edit = measured("edit", (base_file, up_file),
                    lambda: edit_fractions(examples / "scene_0.png", base_file, up_file, out / "edit"))
    log(f"piti edit on scene_0: {edit['mask_changed']:.3f} of the mask changed; {edit['region_took_new_class']:.3f} "
        f"of that region took the new class, {edit['rest_changed']:.3f} of the rest changed")
    truth = colour_accuracy(torch.stack([torch.from_numpy(to_unit(render(m))) for m in ev_masks]), ev_masks)
    bounds = {grid: layout_bound(ev_masks, grid) for grid in (1, 4, 8, 16)}
    report["ceilings"] = {"real_pictures_256": truth, "layout_on_grid_64": bounds}
    save_report()
    log("a model that knows the layout only on a G × G grid scores at most (64 px): "
        + ", ".join(f"G = {g}: {b:.3f}" for g, b in bounds.items()))
    total = sum(p["minutes"] for p in report["phases"].values()) + sum(e["minutes"] for e in report["eval"].values())
    log(f"done: {total:.0f} minutes of training and evaluation; {report_file}")


def register(weights: Path, base_file: Path, up_file: Path) -> None:
    """sha256 and size of the exported files in the manifest (when exporting into weights/)."""
    if weights.resolve() != MANIFEST.parent.resolve():
        return
    manifest = json.loads(MANIFEST.read_text())
    entries = [e for e in manifest["entries"] if e["id"] not in ("piti-demo-base", "piti-demo-upsample")]
    for entry_id, path, preset in (("piti-demo-base", base_file, "piti-base-mask-tiny"),
                                   ("piti-demo-upsample", up_file, "piti-upsample-mask-tiny")):
        entries.append({
            "id": entry_id, "filename": path.name, "kind": "checkpoint", "preset": preset, "source": "bundled",
            "url": None, "sha256": sha256_file(path), "size": path.stat().st_size,
            "description": "Small demonstration model made by recipes/demo_model.py on synthetic scenes: a tiny "
                           "GLIDE pretrained on captions, then finetuned into PITI (not a photo model; use the "
                           "PITI checkpoints for real images)."})
    manifest["entries"] = entries
    atomic_write_text(MANIFEST, json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
