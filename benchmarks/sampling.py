"""Network cost on this machine: the full presets, fp32 vs bf16, against a measured matmul peak.

Prints, for the full GLIDE-base-sized PITI model (random weights; cost does not depend on
them): ms per call at batch 1 and for the guided cond+uncond batch of 2, GFLOP per call, the
fraction of the measured GEMM peak it reaches; the same for the upsampler (256², batch 1);
the condition encoder once; the resulting time per image for the official 250 + fast27
schedule; then the sampler-accuracy table (`sampler_accuracy.py`).

`--trial` instead tries, in bf16 for one guided base call and one upsampler call, what could
make a call faster on the CPU: `torch.compile` (inductor), inductor with `freezing` (weights
constant-folded and pre-packed for oneDNN), and TorchScript `freeze` + `optimize_for_inference`
(oneDNN pre-packing); each is adopted only at ≥ 1.15× the eager bf16 call with outputs within
1e-2 relative of it, and the verdict is printed either way.

    python -m benchmarks.sampling            # add --quick to skip the upsampler
    python -m benchmarks.sampling --trial    # add --tiny for a check on the tiny presets
"""

from __future__ import annotations

import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.machine import alternating, random_model, setup, timed
from benchmarks.sampler_accuracy import main as accuracy

# The official implementation on this machine, fp32 (from the project brief).
OFFICIAL = {"base_guided_call_s": 1.74, "upsampler_call_s": 4.56, "encoder_s": 0.19, "steps": (250, 27)}


def gemm_peak(dtype: torch.dtype, n: int = 2048, reps: int = 6) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def gflop(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def model_in(preset: str, dtype: torch.dtype):
    return random_model(preset, "cpu", {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype])


def report(label: str, seconds: float, flops: float, peak: float) -> None:
    print(f"  {label:<34}{seconds * 1000:>9.0f} ms{flops:>9.1f} GFLOP{flops / seconds:>8.0f} GFLOP/s"
          f"{100 * flops / seconds / peak:>6.0f}% of peak")


def layout_speedup(preset: str, batch: int, dtype: torch.dtype) -> float:
    """NCHW time / channels-last time for one call of a (small) preset, as the demo runs it."""
    model = model_in(preset, dtype)
    size = model.config.unet.image_size
    x, t = torch.randn(batch, 3, size, size, dtype=dtype), torch.full((batch,), 500.0)
    emb = model.encode(torch.rand(batch, *model.condition_shape, dtype=dtype))
    low = torch.rand(batch, 3, 64, 64, dtype=dtype) if model.config.is_upsampler else None
    fn = lambda: model(x, t, embedding=emb, low_res=low)  # noqa: E731
    channels_last = timed(fn, 3)
    model.to(memory_format=torch.contiguous_format)
    return timed(fn, 3) / channels_last


def main(quick: bool = False) -> None:
    print(setup(2))
    peaks = {torch.float32: gemm_peak(torch.float32), torch.bfloat16: gemm_peak(torch.bfloat16)}
    print(f"GEMM peak 2048²: fp32 {peaks[torch.float32]:.0f} GFLOP/s, bf16 {peaks[torch.bfloat16]:.0f} GFLOP/s")

    results = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        model = model_in("piti-base-mask", dtype)
        cond = torch.rand(2, 3, 256, 256, dtype=dtype) * 2 - 1
        emb = model.encode(cond)
        x = torch.randn(2, 3, 64, 64, dtype=dtype)
        t = torch.tensor([500.0, 500.0])
        one = emb.__class__(emb.pooled[:1], emb.tokens[:1])
        print(f"base 64² ({name}):")
        for label, fn, reps in (
            ("batch 1", lambda: model(x[:1], t[:1], embedding=one), 3),
            ("batch 2 (guided: cond+uncond)", lambda: model(x, t, embedding=emb), 3),
            ("condition encoder, batch 2", lambda: model.encode(cond), 2),
        ):
            seconds = timed(fn, reps)
            results[(name, label)] = seconds
            report(label, seconds, gflop(fn), peaks[dtype])
        # What the channels-last layout buys (piti's CPU default): the guided call in NCHW.
        model.to(memory_format=torch.contiguous_format)
        nchw = timed(lambda: model(x, t, embedding=emb), 3)
        print(f"  guided call in NCHW layout: {nchw * 1000:.0f} ms "
              f"(channels-last is {nchw / results[(name, 'batch 2 (guided: cond+uncond)')]:.2f}× faster)")
        del model
        if not quick:
            up = model_in("piti-upsample-mask", dtype)
            cond1 = cond[:1]
            up_emb = up.encode(cond1)
            xs, low = torch.randn(1, 3, 256, 256, dtype=dtype), torch.rand(1, 3, 64, 64, dtype=dtype) * 2 - 1
            fn = lambda: up(xs, t[:1], embedding=up_emb, low_res=low)  # noqa: E731
            seconds = timed(fn, 1)
            results[(name, "upsampler")] = seconds
            print(f"upsampler 256² ({name}):")
            report("batch 1", seconds, gflop(fn), peaks[dtype])
            del up

    print("channels-last speed-up on the demo presets (NCHW time / channels-last time):")
    for preset, batch in (("piti-base-mask-tiny", 8), ("piti-upsample-mask-tiny", 4)):
        gains = [f"{name} {layout_speedup(preset, batch, dtype):.2f}×"
                 for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16"))]
        print(f"  {preset}, batch {batch}: {', '.join(gains)}")

    base_steps, up_steps = OFFICIAL["steps"]
    official = base_steps * (OFFICIAL["base_guided_call_s"] + OFFICIAL["encoder_s"]) + up_steps * (
        OFFICIAL["upsampler_call_s"] + OFFICIAL["encoder_s"])
    print(f"\nper image, {base_steps} guided base steps + {up_steps} upsampler steps (encoder once):")
    print(f"  official implementation (fp32, encoder every step): {official / 60:.1f} min")
    schedules = ((f"ancestral {base_steps} + fast27", base_steps, up_steps),
                 ("dpmpp-2m 25 + fast27", 25, up_steps),
                 ("dpmpp-2m 20 + dpmpp-2m 10", 20, 10))
    for name in ("fp32", "bf16"):
        if (name, "upsampler") not in results:
            continue
        for label, n_base, n_up in schedules:
            ours = n_base * results[(name, "batch 2 (guided: cond+uncond)")] + n_up * results[(name, "upsampler")]
            ours += results[(name, "condition encoder, batch 2")]
            print(f"  piti {name}, {label:<26} {ours / 60:5.1f} min  ({official / ours:5.2f}× the official speed)")
    ratio = results[("fp32", "batch 2 (guided: cond+uncond)")] / results[("bf16", "batch 2 (guided: cond+uncond)")]
    print(f"  guided base call bf16 speed-up over fp32: {ratio:.2f}×")

    print("\nsampler accuracy (RMSE vs a 1000-step DDIM reference):")
    accuracy()


ADOPT_SPEEDUP, ADOPT_RELATIVE = 1.15, 1e-2


def _inductor(freezing: bool):
    def build(decoder, args):
        import torch._inductor.config as inductor_config

        inductor_config.freezing = freezing
        compiled = torch.compile(decoder, backend="inductor")
        compiled(*args)  # compiles here
        return compiled

    return build


def _torchscript(decoder, args):
    traced = torch.jit.trace(decoder, args, check_trace=False)
    return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


TRIALS = (("torch.compile (inductor)", _inductor(False)),
          ("torch.compile (inductor, freezing: pre-packed weights)", _inductor(True)),
          ("TorchScript freeze + optimize_for_inference (oneDNN pre-packing)", _torchscript))


def decoder_call(preset: str, batch: int):
    """The bf16 network (its decoder, which runs every step) and one call's positional inputs."""
    model = model_in(preset, torch.bfloat16)
    size = model.config.unet.image_size
    emb = model.encode(torch.rand(batch, *model.condition_shape, dtype=torch.bfloat16) * 2 - 1)
    args = (torch.randn(batch, 3, size, size, dtype=torch.bfloat16), torch.full((batch,), 500.0), emb.pooled, emb.tokens)
    if model.config.is_upsampler:
        args += (torch.rand(batch, 3, 64, 64, dtype=torch.bfloat16) * 2 - 1,)
    return model.decoder, args


def trial(tiny: bool) -> None:
    suffix = "-tiny" if tiny else ""
    for preset, batch, reps in ((f"piti-base-mask{suffix}", 2, 3), (f"piti-upsample-mask{suffix}", 1, 2)):
        decoder, args = decoder_call(preset, batch)
        eager = decoder(*args).float()
        print(f"{preset}, batch {batch}, bf16 (times: the fastest of {reps} alternating calls each)", flush=True)
        for name, build in TRIALS:
            start = time.perf_counter()
            try:
                fn = build(decoder, args)
                out = fn(*args).float()
            except Exception as err:  # a backend that does not build here is a result, not a crash
                reason = (str(err).strip().splitlines() or [""])[0][:200]
                print(f"  {name}: does not build on this machine ({type(err).__name__}: {reason})", flush=True)
                continue
            built = time.perf_counter() - start
            eager_s, seconds = alternating(lambda: decoder(*args), lambda: fn(*args), reps)
            relative = ((out - eager).norm() / eager.norm()).item() if out.isfinite().all() else float("inf")
            speedup = eager_s / seconds
            adopt = speedup >= ADOPT_SPEEDUP and relative <= ADOPT_RELATIVE
            shown = f"{relative:.1e}" if relative != float("inf") else "output not finite"
            print(f"  {name}: {seconds * 1000:.0f} ms vs eager {eager_s * 1000:.0f} ms ({speedup:.2f}×), relative "
                  f"difference {shown}, built in {built:.0f} s -> {'adopt' if adopt else 'not adopted'} "
                  f"(needs ≥ {ADOPT_SPEEDUP}× and ≤ {ADOPT_RELATIVE:g})", flush=True)
            torch._dynamo.reset()  # each trial compiles afresh under its own settings


if __name__ == "__main__":
    if "--trial" in sys.argv:
        print(setup(2))
        trial(tiny="--tiny" in sys.argv)
    else:
        main(quick="--quick" in sys.argv)
