"""How many pictures share a network batch when the user does not say (`--batch-size`).

On a CPU the answer is a fixed `CPU_ROWS`: fp32 calls the network one row at a time anyway
(`cascade.one_row_per_call`), so a batch only groups pictures between writes. On CUDA it is as
many as fit: one guided call of each stage is run at 1 and at 2 pictures, the peak memory of
each is read (`torch.cuda.max_memory_allocated`), and the rows are those whose predicted peak,
fixed part + rows × per-picture part, stays under `HEADROOM` of the memory free after loading,
at most `MAX_ROWS`. A guided stage runs twice as many network rows as pictures (condition and
null together); that is inside the measured per-picture part.

CUDA kernels are not batch-invariant: a picture's last bits depend on its batch size, so a run
that must repeat byte for byte on the same card names `--batch-size` (the chosen size is
recorded as `batch_rows` in `piti_sample.json`).
"""

from __future__ import annotations

import math

import torch

from piti_cli.pipeline.cascade import StageSettings, probe_step

CPU_ROWS = 4
MAX_ROWS = 64  # beyond this a batch gains nothing measurable and delays the first files
HEADROOM = 0.8  # of the free memory: the allocator's fragmentation and the sampler's state


def rows_that_fit(free: int, peak_one: int, peak_two: int, cap: int = MAX_ROWS, headroom: float = HEADROOM) -> int:
    """The most pictures n ≤ `cap` with fixed + n·per ≤ headroom·free, where per = peak_two −
    peak_one and fixed = peak_one − per are read off the peaks at 1 and 2 pictures; at least 1."""
    per = max(1, peak_two - peak_one)
    fixed = peak_one - per
    return max(1, min(cap, math.floor((headroom * free - fixed) / per)))


def _stage_peak(model, settings: StageSettings, pictures: int, device: torch.device, low_size: int) -> int:
    """Peak bytes allocated, above what was held before, by one step of a stage for `pictures`
    pictures (`cascade.probe_step`: guided, condition and null rows together), the encoder pass
    included."""
    torch.cuda.synchronize(device)
    held = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    probe_step(model, settings, pictures, device, low_size)()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - held


def auto_rows(base, upsampler, base_settings: StageSettings, up_settings: StageSettings,
              device: torch.device, pictures: int) -> int:
    """Pictures per batch for `pictures` pictures on `device` (module doc): `CPU_ROWS` off CUDA,
    else the fewest that fit of both stages, never more than there are pictures."""
    if device.type != "cuda":
        return max(1, min(CPU_ROWS, pictures))
    free, _ = torch.cuda.mem_get_info(device)
    fits = []
    for model, settings in ((base, base_settings), (upsampler, up_settings)):
        if model is not None:
            peaks = [_stage_peak(model, settings, n, device, base.config.unet.image_size) for n in (1, 2)]
            fits.append(rows_that_fit(free, *peaks))
    torch.cuda.empty_cache()
    return max(1, min([pictures, *fits]))
