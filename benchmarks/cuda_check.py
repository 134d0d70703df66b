"""CUDA check: the same code on a GPU — agreement with the CPU, mixed precision, CLI runs, speed.

Run on a machine with a GPU (CI has none). Each section reports and carries on after a failure;
the exit status is non-zero if any section failed.

1. agreement: tiny presets, CUDA fp32 (TF32 off) vs CPU fp32, then CUDA bf16 / fp16 vs CUDA
   fp32 (relative error of one network call and of a whole DDIM sample from the same noise);
   a CUDA-generator sample twice with one seed is identical.
2. `piti sample --device cuda` with fp16 and bf16 on the example masks (bundled demo models).
3. `piti finetune` / `piti upsample-train` on CUDA with fp16 (loss scaling) and bf16 autocast,
   then `--resume`, on a small procedural scene pack.
4. full-size files in the official layout (random weights) through `piti sample`: seconds
   per image at the official schedule (ancestral 250 + fast27), fp16.
5. speed of the full presets (random weights): guided base call, upsampler call, per image
   at the official 250 + fast27 schedule, per precision.

    python benchmarks/cuda_check.py --out /tmp/cuda_check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS: dict = {}
DEVICE = "cuda"  # --device cpu: a dry run of sections 1-3 on a machine without a GPU
PRECISIONS = ("fp32", "bf16", "fp16")


def section(name):
    def wrap(fn):
        def run(*args):
            start = time.perf_counter()
            try:
                RESULTS[name] = {"ok": True, **(fn(*args) or {})}
            except Exception as err:  # report and go on: one broken section must not hide the rest
                RESULTS[name] = {"ok": False, "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
            RESULTS[name]["seconds"] = round(time.perf_counter() - start, 1)
            print(f"[{name}] {json.dumps({k: v for k, v in RESULTS[name].items() if k != 'trace'})}", flush=True)
        return run
    return wrap


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm())


@section("agreement")
def agreement():
    from piti_cli.models.config import get_preset
    from piti_cli.models.piti import build_model
    from piti_cli.pipeline.cascade import StageSettings, prepare, sample_stage

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    out = {}
    for preset in ("piti-base-mask-tiny", "piti-upsample-mask-tiny"):
        torch.manual_seed(0)
        model = build_model(get_preset(preset)).eval()
        for p in model.parameters():  # the zero-initialised output layers would hide errors
            torch.nn.init.normal_(p, std=0.05)
        cfg = model.config
        size, enc = cfg.unet.image_size, cfg.encoder.input_size
        g = torch.Generator().manual_seed(1)
        x = torch.randn(2, 3, size, size, generator=g)
        cond = torch.rand(2, cfg.encoder.in_channels, enc, enc, generator=g) * 2 - 1
        low = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1 if cfg.unet.super_res else None
        t = torch.tensor([100.0, 800.0])
        with torch.no_grad():
            ref = model(x, t, cond, low)
            gpu = {}
            for precision in PRECISIONS:
                m = prepare(build_model(cfg), torch.device(DEVICE), precision)
                m.load_state_dict(model.state_dict())
                dtype = next(m.parameters()).dtype
                on = lambda v: None if v is None else v.to(DEVICE, dtype)  # noqa: E731
                gpu[precision] = m(on(x), t.to(DEVICE), on(cond), on(low)).float()
        out[preset] = {f"{DEVICE}_fp32_vs_cpu_fp32": rel(gpu["fp32"], ref)}
        out[preset].update({f"{DEVICE}_{p}_vs_fp32": rel(gpu[p], gpu["fp32"]) for p in PRECISIONS[1:]})
        assert out[preset][f"{DEVICE}_fp32_vs_cpu_fp32"] < 1e-4, out[preset]
        assert all(out[preset][f"{DEVICE}_{p}_vs_fp32"] < 5e-2 for p in PRECISIONS[1:]), out[preset]

    # whole samples from the same x_T (DDIM 25, guidance 3): CPU vs CUDA, and precisions on CUDA
    torch.manual_seed(0)
    model = build_model(get_preset("piti-base-mask-tiny")).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    cond = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    noise = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    settings = StageSettings(sampler="ddim", steps="ddim25", guidance=3.0)
    cpu = sample_stage(model, cond, settings, None, noise=noise)
    samples = {}
    for precision in PRECISIONS:
        m = prepare(build_model(model.config), torch.device(DEVICE), precision)
        m.load_state_dict(model.state_dict())
        samples[precision] = sample_stage(m, cond.to(DEVICE), settings, None, noise=noise.to(DEVICE)).cpu()
    out["ddim25_sample"] = {f"{DEVICE}_{p}_vs_cpu_fp32": rel(s, cpu) for p, s in samples.items()}
    # same seed on a generator of the device: identical samples
    anc = StageSettings(sampler="ancestral", steps="50", guidance=1.3)
    m = prepare(build_model(model.config), torch.device(DEVICE), "fp32")
    m.load_state_dict(model.state_dict())
    a = sample_stage(m, cond.to(DEVICE), anc, torch.Generator(DEVICE).manual_seed(7))
    b = sample_stage(m, cond.to(DEVICE), anc, torch.Generator(DEVICE).manual_seed(7))
    out["same_seed_identical"] = bool(torch.equal(a, b))
    assert out["same_seed_identical"]
    return out


def cli(*args: str, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "piti_cli", *args]
    env = {**os.environ, "COLUMNS": "1000", **(env or {})}  # rich must not wrap the lines we parse
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])}… exit {done.returncode}: {done.stderr.strip()[-600:]}")
    return done


@section("sample_cli")
def sample_cli(out: Path):
    res = {}
    for precision in PRECISIONS[1:]:
        folder = out / f"samples_{precision}"
        start = time.perf_counter()
        cli("sample", "--cond", "examples/mask", "--out", str(folder), "--device", DEVICE, "--precision", precision)
        pngs = sorted(folder.glob("*.png"))
        assert pngs, "no PNGs written"
        res[precision] = {"pngs": len(pngs), "wall_s": round(time.perf_counter() - start, 1)}
    return res


@section("train_cli")
def train_cli(out: Path):
    from benchmarks.scenes import make_scenes, write_pack
    from piti_cli.checkpoints.io import save_checkpoint
    from piti_cli.models.config import get_preset
    from piti_cli.models.piti import build_model

    work = out / "train"
    pack = write_pack(work / "scenes.h5", *make_scenes(32, seed=0))
    inits = {}
    for name in ("glide-base-tiny", "glide-upsample-tiny"):
        torch.manual_seed(0)
        inits[name] = work / f"{name}.pt"
        save_checkpoint(inits[name], build_model(get_preset(name)).state_dict())
    res = {}
    for precision in PRECISIONS[1:]:
        run = work / f"base_{precision}"
        common = ["--data", str(pack), "--run-dir", str(run), "--device", DEVICE, "--precision", precision]
        cli("finetune", *common, "--stage", "joint", "--init", str(inits["glide-base-tiny"]), "--preset",
            "glide-base-tiny", "--batch-size", "8", "--lr", "1e-4", "--max-steps", "20", "--save-every", "10")
        cli("finetune", *common, "--resume", "--max-steps", "30")
        losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
        assert losses and all(map(lambda v: v == v and abs(v) < 1e3, losses)), losses
        res[f"finetune_{precision}"] = {"last_loss": round(losses[-1], 4), "logged": len(losses)}
    run = work / f"up_{PRECISIONS[-1]}"
    cli("upsample-train", "--data", str(pack), "--run-dir", str(run), "--device", DEVICE, "--precision", PRECISIONS[-1],
        "--init", str(inits["glide-upsample-tiny"]), "--preset", "glide-upsample-tiny", "--perceptual", "none",
        "--aux-start", "2", "--batch-size", "4", "--max-steps", "6", "--save-every", "3")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    res[f"upsample_{PRECISIONS[-1]}"] = {k: round(v, 4) for k, v in metrics[-1].items() if k in ("loss", "adv", "d_loss")}
    return res


@section("official_cascade")
def official_cascade(out: Path):
    """Full-size files in the official layout (random weights) through `piti sample` on the GPU."""
    import re

    from piti_cli.checkpoints.io import save_checkpoint
    from piti_cli.models.config import PRESETS
    from piti_cli.models.piti import build_model

    files = {}
    for role, preset in (("base", "piti-base-mask"), ("upsampler", "piti-upsample-mask")):
        with torch.device(DEVICE):
            model = build_model(PRESETS[preset])
        files[role] = out / f"full_{role}.pt"
        save_checkpoint(files[role], {k: v.cpu() for k, v in model.state_dict().items()})
        del model
    res = {}
    for label, extra in (("1 image, batch 1", ["--limit", "1", "--batch-size", "1"]),
                         ("4 images, batch 4", ["--batch-size", "4"])):
        done = cli("sample", "--cond", "examples/mask", "--out", str(out / "full_samples"), "--device", DEVICE,
                   "--precision", "fp16", "--base", str(files["base"]), "--upsampler", str(files["upsampler"]), *extra)
        seconds = float(re.search(r"in ([0-9.]+)s", done.stdout).group(1))
        images = int(re.search(r"wrote (\d+) images", done.stdout).group(1))
        res[label] = {"seconds": seconds, "seconds_per_image": round(seconds / images, 2)}
    for f in files.values():
        f.unlink()
    return res


@section("speed")
def speed():
    from piti_cli.models.config import PRESETS
    from piti_cli.models.piti import build_model

    torch.backends.cudnn.benchmark = True

    def timed(fn, reps=10):
        fn(); torch.cuda.synchronize()  # noqa: E702
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / reps

    res = {}
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # true fp32
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    with torch.no_grad(), torch.device("cuda"):
        base = build_model(PRESETS["piti-base-mask"]).eval()
        for precision, dtype in dtypes.items():
            base.to(dtype)
            emb = base.encode(torch.rand(2, 3, 256, 256, dtype=dtype))
            x, t = torch.randn(2, 3, 64, 64, dtype=dtype), torch.tensor([500.0, 500.0])
            res.setdefault(precision, {})["base_guided_call_ms"] = 1000 * timed(lambda: base(x, t, embedding=emb))
        del base
        up = build_model(PRESETS["piti-upsample-mask"]).eval()
        for precision, dtype in dtypes.items():
            up.to(dtype)
            emb = up.encode(torch.rand(1, 3, 256, 256, dtype=dtype))
            x, low = torch.randn(1, 3, 256, 256, dtype=dtype), torch.rand(1, 3, 64, 64, dtype=dtype)
            res[precision]["upsampler_call_ms"] = 1000 * timed(lambda: up(x, t[:1], embedding=emb, low_res=low), reps=5)
        del up
    for row in res.values():
        row["per_image_250_fast27_s"] = (250 * row["base_guided_call_ms"] + 27 * row["upsampler_call_ms"]) / 1000
        for k in row:
            row[k] = round(row[k], 2)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/cuda_check")
    ap.add_argument("--skip", action="append", default=[], help="agreement | sample_cli | train_cli | official_cascade | speed")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a dry run (fp16 and speed skipped)")
    args = ap.parse_args()
    global DEVICE, PRECISIONS
    DEVICE = args.device
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if DEVICE == "cpu":
        PRECISIONS = ("fp32", "bf16")
        args.skip += ["speed", "official_cascade"]
    elif not torch.cuda.is_available():
        sys.exit("cuda_check: no CUDA device on this machine")
    gpu = torch.cuda.get_device_name() if DEVICE != "cpu" else "none (dry run)"
    RESULTS["env"] = {"torch": torch.__version__, "gpu": gpu, "python": sys.version.split()[0]}
    print(RESULTS["env"], flush=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    for name, fn, fn_args in (("agreement", agreement, ()), ("sample_cli", sample_cli, (out,)),
                              ("train_cli", train_cli, (out,)), ("official_cascade", official_cascade, (out,)),
                              ("speed", speed, ())):
        if name not in args.skip:
            fn(*fn_args)
    (out / "cuda_check.json").write_text(json.dumps(RESULTS, indent=1))
    failed = [k for k, v in RESULTS.items() if isinstance(v, dict) and v.get("ok") is False]
    print("failed sections:", failed or "none")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
