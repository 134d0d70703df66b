"""Train the small demonstration models that ship in `weights/` (piti-demo-base, piti-demo-upsample).

One command, resumable (rerun it after an interruption; finished stages are skipped, training
continues from its last checkpoint and keeps its time budget):

    python -m recipes.demo_model                   # 2-core CPU: 30 + 35 + 15 min training, ~26 min evaluation
    python -m recipes.demo_model --base-minutes 5 --upsample-minutes 5 --upsample-high-noise-minutes 2 --out /tmp/demo  # a quick look

Both shipped files come from this command on a 2-core CPU. The upsampler trains on random
128² crops in bf16 autocast (`--crop-size 128 --precision bf16`): a step costs ~1.2 s instead
of ~6 s for whole 256² pictures in fp32 (1800 steps in phase 1, 800 in phase 2).

1. procedural scenes (`piti_cli.data.scenes`): four COCO-Stuff classes (sky-other, grass,
   wall-brick, sand), each with its own colour and texture, drawn under random colour masks;
2. tiny random-initialised GLIDE files (the demo has no pretrained prior: it is trained from
   scratch with piti's own training loop, stage `joint`);
3. `piti finetune` (base 64×64) and `piti upsample-train` (64→256 on 128² crops, BSR
   degradations, PatchGAN; no perceptual loss, whose VGG weights cannot be fetched offline);
4. EMA export to `weights/*.safetensors`, example masks to `examples/mask/`, manifest sha256s;
5. the alignment number: fraction of generated pixels whose colour is the class under the mask,
   trained vs untrained.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from piti_cli.checkpoints.convert import load_model
from piti_cli.checkpoints.io import save_checkpoint
from piti_cli.checkpoints.registry import MANIFEST, sha256_file
from piti_cli.data.images import read_image, to_unit
from piti_cli.data.reader import PackedDataset
from piti_cli.data.scenes import MASK_COLOURS, colour_accuracy, make_scenes, write_pack
from piti_cli.io_utils import atomic_write_text
from piti_cli.models.config import get_preset
from piti_cli.models.piti import build_model
from piti_cli.pipeline.cascade import BASE_DEFAULTS, UPSAMPLE_DEFAULTS, prepare, quantize_8bit, sample_stage
from piti_cli.pipeline.sample import SampleJob, run_sample
from piti_cli.train.config import TrainConfig
from piti_cli.train.data import model_condition
from piti_cli.train.state import export_ema, initial_model
from recipes.harness import sample, scene_base_config, train_for

REPO = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def upsampler_fidelity(up_file: Path, pack, count: int = 32) -> dict:
    """PSNR (dB) of the upsampler's 256-px output against the real pictures, from their
    bicubic 64-px versions (8-bit, as the cascade hands them over), and of bicubic upsampling."""
    model = prepare(load_model(up_file)[0], torch.device("cpu"), "bf16")
    scores = {"upsampler": [], "bicubic": []}
    for lo in range(0, count, 8):
        items = [pack[i] for i in range(lo, min(lo + 8, count))]
        truth = torch.stack([it["image"] for it in items])
        low = quantize_8bit(F.interpolate(truth, size=(64, 64), mode="bicubic", antialias=True))
        cond = torch.stack([it["condition"] for it in items])
        outputs = {"upsampler": sample_stage(model, cond, UPSAMPLE_DEFAULTS, torch.Generator().manual_seed(lo),
                                             low_res=low.to(torch.bfloat16)),
                   "bicubic": F.interpolate(low, size=(256, 256), mode="bicubic", align_corners=False)}
        for name, x in outputs.items():
            mse = (x.float().clamp(-1, 1) - truth).square().flatten(1).mean(1)
            scores[name] += (10 * torch.log10(4.0 / mse)).tolist()  # peak-to-peak 2 in [-1, 1]
    return {name: float(np.mean(v)) for name, v in scores.items()}


def end_to_end(eval_pack: Path, base_file: Path, up_file: Path, folder: Path, masks: np.ndarray) -> dict:
    """The README command's settings on the first END_TO_END held-out masks."""
    job = SampleJob(cond=f"{eval_pack}:0-{END_TO_END}", out=folder, base=str(base_file), upsampler=str(up_file),
                    base_settings=dataclasses.replace(BASE_DEFAULTS, guidance=3.0, steps="100"),
                    device="cpu", precision="bf16")
    result = run_sample(job)
    pictures = torch.stack([torch.from_numpy(to_unit(read_image(f, "RGB"))) for f in result.images])
    return {"alignment": colour_accuracy(pictures, masks[:END_TO_END]),
            "seconds_per_image": result.seconds / len(result.images)}


GUIDANCES = (1.3, 3.0)  # piti's default (the official s) and the README command's
END_TO_END = 16  # held-out masks sampled through the whole cascade


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "runs" / "demo"), help="work folder (resumable)")
    ap.add_argument("--weights", default=str(REPO / "weights"), help="where the exported files go")
    ap.add_argument("--examples", default=str(REPO / "examples" / "mask"))
    ap.add_argument("--base-minutes", type=float, default=30.0)
    ap.add_argument("--upsample-minutes", type=float, default=35.0, help="upsampler phase 1 (uniform t)")
    ap.add_argument("--upsample-high-noise-minutes", type=float, default=15.0,
                    help="upsampler phase 2 (t drawn towards high noise, from phase 1's EMA)")
    ap.add_argument("--train-count", type=int, default=1024)
    ap.add_argument("--upsample-device", default="cpu",
                    help="cpu (the shipped files), or cuda (add --workers for the BSR degradation)")
    ap.add_argument("--upsample-crop", type=int, default=128,
                    help="upsampler training crop (0 = whole 256² pictures, 4× the cost per step)")
    ap.add_argument("--workers", type=int, default=0, help="data-loader processes for the upsampler (BSR degradation)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    out, weights = Path(args.out), Path(args.weights)
    out.mkdir(parents=True, exist_ok=True)
    train_pack, eval_pack = out / "scenes_train.h5", out / "scenes_eval.h5"
    if not train_pack.exists():
        write_pack(train_pack, *make_scenes(args.train_count, seed=0))
    if not eval_pack.exists():
        write_pack(eval_pack, *make_scenes(32, seed=12345))
    log("scene packs ready")
    glide = {}
    for name, seed in (("glide-base-tiny", 0), ("glide-upsample-tiny", 1)):
        glide[name] = out / f"{name}-random.pt"
        if not glide[name].exists():
            torch.manual_seed(seed)
            save_checkpoint(glide[name], build_model(get_preset(name)).state_dict())

    base_cfg = scene_base_config(train_pack, out / "base", glide["glide-base-tiny"])
    base_steps = train_for(base_cfg, args.base_minutes, out / "base_budget.json", 50, log)
    up_cfg = TrainConfig(
        data=str(train_pack), run_dir=str(out / "upsample"), init=str(glide["glide-upsample-tiny"]),
        preset="glide-upsample-tiny", input_kind="mask", stage="joint", upsampler=True, batch_size=4,
        lr=2e-4, ema_rates=(0.995,), uncond_p=0.0, timestep_sampler="uniform", perceptual="none",
        log_every=10, save_every=100, keep_checkpoints=1, device=args.upsample_device, seed=0,
        num_workers=args.workers, crop_size=args.upsample_crop, precision="bf16")
    chunk = 100 if args.upsample_device == "cpu" else 250
    up_steps = train_for(up_cfg, args.upsample_minutes, out / "upsample_budget.json", chunk, log)
    # Phase 2 starts from phase 1's EMA with the timesteps drawn towards high noise: uniform t
    # leaves the x0 prediction at t > 700 poor (there an ε error is amplified by 1/√ᾱ, up to
    # 150×), and sampling starts there, so phase-1 samples came out grey: their mean colour
    # held 0.2 of the true one at t = 900 (one-step x0 prediction on held-out pictures).
    hn_cfg = dataclasses.replace(up_cfg, run_dir=str(out / "upsample_high_noise"), init=str(out / "upsample"),
                                 preset=None, timestep_sampler="high-noise", seed=1)
    up_steps += train_for(hn_cfg, args.upsample_high_noise_minutes, out / "upsample_high_noise_budget.json", chunk, log)

    weights.mkdir(parents=True, exist_ok=True)
    base_file, _, _ = export_ema(out / "base", weights / "piti_demo_base.safetensors")
    # After a short run (a quick look) the EMA still holds 0.995^steps of the random start and
    # samples noise; such a run exports the trained weights instead.
    short = 0.995 ** up_steps > 0.01
    up_file, _, _ = export_ema(out / "upsample_high_noise", weights / "piti_demo_upsample.safetensors", raw=short)
    log(f"exported {base_file} ({base_steps} steps) and {up_file} ({up_steps} steps)")

    # Example conditions: held-out scene masks in COCO-Stuff colours.
    ds = PackedDataset(eval_pack)
    examples = Path(args.examples)
    examples.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        Image.fromarray(MASK_COLOURS[ds[i]["condition"]]).save(examples / f"scene_{i}.png")

    # Measurements, cached per weight file they depend on, so that an interrupted evaluation
    # resumes and a retrained upsampler does not redo the base model's numbers.
    results_file = out / "alignment.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results.update(base_steps=base_steps, upsample_steps=up_steps, eval_masks=len(ds))
    stamps = {path: sha256_file(path)[:16] for path in (base_file, up_file)}

    def measured(name: str, depends_on: tuple, compute):
        stamp = "+".join(stamps[path] for path in depends_on)
        if not isinstance(results.get(name), dict) or results[name].get("weights") != stamp:
            results[name] = {"weights": stamp, "value": compute()}
            atomic_write_text(results_file, json.dumps(results, indent=1) + "\n")
        return results[name]["value"]

    # Alignment: trained vs untrained base on the 32 held-out masks, with `piti sample`'s own
    # base sampler (ancestral, 250 steps, learned variance).
    eval_tensors = PackedDataset(eval_pack, as_tensors=True)
    conds = torch.stack([model_condition(eval_tensors[i]["condition"], 64) for i in range(len(ds))])
    masks = np.stack([ds[i]["condition"] for i in range(len(ds))])
    models = {"untrained": lambda: initial_model(str(glide["glide-base-tiny"]), preset="glide-base-tiny",
                                                 input_kind="mask", glide=None)[0],
              "trained": lambda: load_model(base_file)[0]}
    score = {}
    for g in GUIDANCES:
        for name, model in models.items():
            score[name] = measured(f"{name}_g{g}", (base_file,), lambda: colour_accuracy(
                sample(model(), conds, BASE_DEFAULTS.sampler, BASE_DEFAULTS.steps, g, seed=1), masks))
        log(f"alignment at guidance {g} (pixels whose colour is the class under the mask, chance 0.25): "
            f"untrained {score['untrained']:.3f}, trained {score['trained']:.3f}")
    fidelity = measured("upsampler_psnr", (up_file,), lambda: upsampler_fidelity(up_file, eval_tensors))
    log(f"upsampler on the real 64-px pictures: PSNR {fidelity['upsampler']:.2f} dB against the 256-px "
        f"originals (bicubic {fidelity['bicubic']:.2f} dB)")
    # End to end, as the README command makes them: 256-px PNGs, guidance 3, 100 steps, bf16.
    e2e = measured("end_to_end", (base_file, up_file), lambda: end_to_end(eval_pack, base_file, up_file, out / "eval_samples", masks))
    log(f"end to end (256 px, guidance 3): {e2e['alignment']:.3f}, {e2e['seconds_per_image']:.1f} s per image")

    manifest = json.loads(MANIFEST.read_text())
    entries = [e for e in manifest["entries"] if e["id"] not in ("piti-demo-base", "piti-demo-upsample")]
    for entry_id, path, preset in (("piti-demo-base", base_file, "piti-base-mask-tiny"),
                                   ("piti-demo-upsample", up_file, "piti-upsample-mask-tiny")):
        entries.append({
            "id": entry_id, "filename": path.name, "kind": "checkpoint", "preset": preset, "source": "bundled",
            "url": None, "sha256": sha256_file(path), "size": path.stat().st_size,
            "description": "Small demonstration model trained by recipes/demo_model.py on synthetic scenes "
                           "(not a photo model; use the PITI checkpoints for real images)."})
    manifest["entries"] = entries
    if weights.resolve() == MANIFEST.parent.resolve():
        atomic_write_text(MANIFEST, json.dumps(manifest, indent=2) + "\n")
    log("done")


if __name__ == "__main__":
    main()
