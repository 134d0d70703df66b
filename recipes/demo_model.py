"""PITI in miniature: the bundled demo models (piti-demo-base, piti-demo-upsample), made the
paper's way — pretrain a tiny GLIDE on captions, convert it, finetune in two stages — with the
ablation the paper reports (the same finetuning from random weights).

One command, in phases that each land (rerun it after an interruption: a phase whose EMA is in
`recipes/demo_phases/` is skipped, a phase in progress continues from its last checkpoint in
`--out` and keeps its time budget, measurements are cached per weight file):

    python -m recipes.demo_model --until pretrain_base   # one phase (≤ 45 minutes), then commit
    python -m recipes.demo_model                          # every phase not yet landed, then the evaluation
    python -m recipes.demo_model --scale 0.05 --out /tmp/demo --weights /tmp/demo/weights --phases /tmp/demo/phases

Each phase is budgeted in steps with a time cap (`BUDGET`): a slow day reaches fewer steps,
and the log and the report say so. Each exports its EMA (safetensors, ~9 MB) to
`recipes/demo_phases/NAME.safetensors` with its numbers in `recipes/demo_phases/report.json`
(steps, minutes, sha256 and, for the PITI bases, the layout diagnostics of
`recipes.diagnostics`); commit both before starting the next phase, which starts from that file.

1. scenes (`piti_cli.data.scenes`): 1024 for training, 32 held out, each with a caption — the
   class names of an 8 × 8 grid of the scene (64 tokens, the demo GLIDE's context);
2. `pretrain_base`, GLIDE's way (`--stage pretrain`): the demo's tiny GLIDE (`demo_glide`:
   the shared grid position on queries and condition keys, no pooled path; see
   docs/demo-model.md) on the captions;
3. GLIDE → PITI, as users do it with `base.pt`: the decoder kept, the text side replaced by a
   fresh mask encoder taking the mask at 128² (8² tokens, the captions' grid); `stage1` trains
   the encoder alone (decoder frozen), `stage2` everything;
4. `ablation`: as many finetuning steps (stage 1 + stage 2), all joint, from a random decoder;
5. the upsampler is kept when `--weights` already holds one (only the base changed); else
   `pretrain_upsample` and `upsample` (BSR degradations, PatchGAN) make it;
6. export, example masks, manifest sha256s;
7. evaluation with the README's first command's settings, on the 32 held-out masks:
   mask agreement (pixels whose nearest class colour is the class under the mask) at 64 and
   256 px, the colour the pictures keep, `piti edit` on an example, and the ablation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
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
from piti_cli.models.config import ModelConfig, get_preset
from piti_cli.models.piti import build_model
from piti_cli.diffusion import samplers
from piti_cli.diffusion.guidance import classifier_free
from piti_cli.diffusion.respace import make_process
from piti_cli.models.unet import UNet
from piti_cli.pipeline.cascade import BASE_DEFAULTS, UPSAMPLE_DEFAULTS
from piti_cli.pipeline.edit import run_edit
from piti_cli.pipeline.sample import SampleJob, run_sample
from piti_cli.train.config import TrainConfig
from piti_cli.data.images import fit_condition
from piti_cli.train.data import model_image
from piti_cli.train.state import export_ema
from recipes.diagnostics import describe, layout_diagnostics
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
GRID = 8  # the token grid: captions of GRID × GRID class names, the mask's (CONDITION_SIZE/16)² tokens
CONDITION_SIZE = 16 * GRID
# Each phase: (steps, the minutes that cap it on a 2-core CPU); ≤ 45 minutes, so each lands.
BUDGET = {
    "pretrain_base": (2500, 40.0), "stage1": (600, 10.0), "stage2": (2000, 35.0),
    "pretrain_upsample": (850, 20.0), "upsample": (450, 12.0),
}
PHASES = REPO / "recipes" / "demo_phases"


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
    conds = torch.stack([fit_condition(ds[i]["condition"], model.config.encoder.input_size) for i in range(n)])
    pictures = sample(model, conds, README_BASE.sampler, README_BASE.steps, README_BASE.guidance, seed=1)
    return colour_accuracy(pictures, masks[:n])


def caption_agreement(glide_file: Path, masks: np.ndarray) -> float:
    """64-px agreement of the pretrained tiny GLIDE sampled from the held-out scenes' captions
    (the 4 × 4 grid of class names; the README command's base sampler and guidance, the empty
    caption as the null input): what pretraining alone knows of the layout."""
    model, _ = load_model(glide_file)
    tokens = torch.from_numpy(np.stack([caption(m, GRID) for m in masks]).astype(np.int64))
    ctx = model.model_config.text.context_length
    tokens = torch.cat([tokens, torch.zeros(len(masks), ctx - tokens.shape[1], dtype=torch.long)], 1)
    given = torch.arange(ctx)[None].expand(len(masks), -1) < GRID * GRID
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

def demo_glide(name: str) -> ModelConfig:
    """The demo's tiny GLIDE: the preset with the demo's departures (docs/demo-model.md):
    captions on the mask tokens' grid (context GRID²) and, for the base, the shared grid
    position with no pooled path (`UNetConfig.grid_attention`, `pooled_condition`)."""
    preset = get_preset(name)
    text = dataclasses.replace(preset.text, context_length=GRID * GRID)
    if preset.is_upsampler:
        return dataclasses.replace(preset, text=text)
    unet = dataclasses.replace(preset.unet, grid_attention=True, pooled_condition=False)
    return dataclasses.replace(preset, unet=unet, text=text)  # the preset's name: GLIDE → PITI keeps it tiny


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "runs" / "demo"), help="work folder (resumable)")
    ap.add_argument("--weights", default=str(REPO / "weights"), help="where the exported files go")
    ap.add_argument("--phases", default=str(PHASES), help="where each finished phase's EMA lands (tracked)")
    ap.add_argument("--examples", default=str(REPO / "examples" / "mask"))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every phase's steps and minutes")
    ap.add_argument("--device", default="cpu",
                    help="where the training phases run (e.g. cuda); the evaluation runs on the CPU, as the "
                         "README command does")
    ap.add_argument("--train-count", type=int, default=1024)
    ap.add_argument("--eval-count", type=int, default=EVAL_COUNT, help="held-out masks (the report uses 32)")
    ap.add_argument("--chunk", type=int, default=250, help="training steps between checkpoints")
    ap.add_argument("--until", choices=tuple(BUDGET) + ("export",), default=None,
                    help="stop after this phase (rerun without it to go on)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    budget = {k: (max(1, round(steps * args.scale)), minutes * args.scale) for k, (steps, minutes) in BUDGET.items()}
    out, weights, phases = Path(args.out), Path(args.weights), Path(args.phases)
    out.mkdir(parents=True, exist_ok=True)
    phases.mkdir(parents=True, exist_ok=True)
    report_file = phases / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}

    def save_report():
        atomic_write_text(report_file, json.dumps(report, indent=1) + "\n")

    # 1. scenes with captions on the token grid
    train_pack, eval_pack = out / "scenes_train.h5", out / "scenes_eval.h5"
    for path, count, seed in ((train_pack, args.train_count, 0), (eval_pack, args.eval_count, 12345)):
        if not path.exists():
            images, masks = make_scenes(count, seed=seed)
            write_pack(path, images, masks, captions=np.stack([caption(m, GRID) for m in masks]))
    ev_images, ev_masks = make_scenes(args.eval_count, seed=12345)
    log("scene packs ready")

    # the random tiny GLIDE base (with its config): the start of pretraining and of the ablation
    glide_random = out / "glide-base-random.safetensors"
    if not glide_random.exists():
        torch.manual_seed(0)
        config = demo_glide("glide-base-tiny")
        save_checkpoint(glide_random, build_model(config).state_dict(), config)

    def phase(name: str, cfg: TrainConfig) -> Path:
        """Train `name` (skipped when its EMA has landed in `phases`), export its EMA there,
        log and record its steps, minutes and (for PITI bases) the layout diagnostics."""
        landed = phases / f"{name}.safetensors"
        if not landed.exists():
            steps, minutes = budget[name]
            cfg.save_every = args.chunk
            step = train_for(cfg, minutes, out / f"{name}_budget.json", args.chunk, log, steps=steps)
            spent = json.loads((out / f"{name}_budget.json").read_text())["seconds"]
            if step < steps:
                log(f"{name}: the {minutes:.0f}-minute cap stopped it at step {step} of {steps} (a slow day)")
            export_ema(cfg.run_dir, landed)
            entry = {"steps": step, "of_steps": steps, "minutes": round(spent / 60, 1), "sha256": sha256_file(landed)}
            model, config = load_model(landed)
            if config.family == "piti":
                entry["diagnostics"] = diagnostics(model, eval_pack, ev_masks)
                log(f"{name}: {describe(entry['diagnostics'])}")
            report.setdefault("phases", {})[name] = entry
            save_report()
            log(f"{name} landed: {landed} ({step} steps, {entry['minutes']} min); commit it before the next phase")
        if name == args.until:
            log(f"stopped after {name} (--until); rerun without --until to go on")
            raise SystemExit(0)
        return landed

    dev = args.device
    # 2. pretraining, GLIDE's way: the tiny GLIDE base on captions (flips off: a caption says where)
    pretrained = phase("pretrain_base", scene_base_config(
        train_pack, out / "pretrain_base", glide_random, dev, input_kind=None, stage="pretrain", flip=False))
    # 3. GLIDE → PITI: stage 1 (the new encoder alone, the pretrained decoder frozen), stage 2
    stage1 = phase("stage1", scene_base_config(train_pack, out / "stage1", pretrained, dev, stage="encoder",
                                               lr=1e-3, ema_rates=(0.99,), condition_size=CONDITION_SIZE))
    stage2 = phase("stage2", scene_base_config(train_pack, out / "stage2", stage1, dev, lr=3e-4,
                                               condition_size=CONDITION_SIZE))
    # 4. the ablation: as many finetuning steps (stage 1 + stage 2), all joint, from a random decoder
    budget["ablation"] = tuple(a + b for a, b in zip(budget["stage1"], budget["stage2"]))
    ablation = phase("ablation", scene_base_config(train_pack, out / "ablation", glide_random, dev,
                                                   condition_size=CONDITION_SIZE))
    # 5. the upsampler, PITI's way, from a tiny GLIDE upsampler pretrained on captions (kept
    #    from the last run when only the base changes: `--until`/reuse, see the module docs)
    up_file = weights / "piti_demo_upsample.safetensors"
    if not up_file.exists():
        glide_up = out / "glide-upsample-random.safetensors"
        if not glide_up.exists():
            torch.manual_seed(1)
            config = demo_glide("glide-upsample-tiny")
            save_checkpoint(glide_up, build_model(config).state_dict(), config)
        pre_up = phase("pretrain_upsample", upsample_run(train_pack, out / "pretrain_upsample", glide_up, dev,
                                                         input_kind=None, stage="pretrain", flip=False,
                                                         degradation="bicubic"))
        up_phase = phase("upsample", upsample_run(train_pack, out / "upsample", pre_up, dev,
                                                  timestep_sampler="high-noise", adv_weight=0.01, aux_start=0))
        weights.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(up_phase, up_file)

    # 6. export, examples, manifest
    weights.mkdir(parents=True, exist_ok=True)
    base_file = weights / "piti_demo_base.safetensors"
    shutil.copyfile(stage2, base_file)
    examples = Path(args.examples)
    examples.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        Image.fromarray(MASK_COLOURS[ev_masks[i]]).save(examples / f"scene_{i}.png")
    register(weights, base_file, up_file)
    log(f"exported {base_file} and {up_file}")
    if args.until == "export":
        raise SystemExit(0)

    # 7. evaluation, cached per weight file it depends on
    stamps = {p: sha256_file(p)[:16] for p in (base_file, up_file, ablation, pretrained, stage1)}

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
    ablation_64 = measured("ablation_64", (ablation,), lambda: base_agreement(ablation, eval_pack, ev_masks))
    finetuned = measured("finetuned_64", (base_file,), lambda: base_agreement(base_file, eval_pack, ev_masks))
    after_stage1 = measured("stage1_64_first8", (stage1,), lambda: base_agreement(stage1, eval_pack, ev_masks, count=8))
    log(f"ablation, base alone at 64 px (fp32): pretrained then finetuned {finetuned:.3f} (after stage 1, "
        f"the encoder alone, first 8 masks: {after_stage1:.3f}), the same finetuning from random weights {ablation_64:.3f}")
    captions = measured("pretrained_captions_64_first8", (pretrained,),
                        lambda: caption_agreement(pretrained, ev_masks[:8]))
    log(f"the pretrained tiny GLIDE alone, sampled from the captions ({GRID} × {GRID} class names), first 8 masks: "
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


def diagnostics(model, eval_pack: Path, masks: np.ndarray) -> dict:
    """`recipes.diagnostics.layout_diagnostics` of a base on the held-out scenes."""
    ds, raw = PackedDataset(eval_pack, as_tensors=True), PackedDataset(eval_pack)
    size, csize = model.config.unet.image_size, model.config.encoder.input_size
    images = torch.stack([model_image(raw[i]["image"], size) for i in range(len(ds))])
    conds = torch.stack([fit_condition(ds[i]["condition"], csize) for i in range(len(ds))])
    return layout_diagnostics(model, images, conds, masks)


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
