"""Training batches from a `piti prep pack` file, in a resumable, process-count-free order.

The run sees one endless stream of *global sample numbers* k = 0, 1, 2, …  Sample k is
item ``perm_e[k mod n]`` of the (optionally reduced, `data_fraction`) pack, where epoch
e = k // n has its own seeded permutation. Step s consumes k in [s·G, (s+1)·G) for the
global batch G; process r of W takes its contiguous slice of it. Every random choice of a
sample (flip, condition dropout, BSR degradation, diffusion noise) comes from a generator
seeded by (seed, k). Hence:

* resuming at step s only needs s (no loader state);
* W processes with batch G/W see exactly the samples, flips, noise that one process with
  batch G sees, in the same order.

Items (model-ready tensors): ``image`` (3, S, S) in [-1, 1] at the model's size (64 base,
256 upsampler) — as the official loader, the stored 256² uint8 picture PIL-BICUBIC-resized,
still uint8, then normalised; ``condition`` (C, E, E) at the encoder's input size (PIL
nearest), replaced by the null condition (all ones) with probability `uncond_p`;
``noise`` (3, S, S); ``low_res`` (3, 64, 64) for the upsampler (BSR-degraded, or with
`degradation="bicubic"` the clean PIL-BICUBIC 4× reduction); ``k``. For a GLIDE model
(text-to-image pretraining, `caption_length` L > 0) ``tokens`` (L,) and ``token_mask`` (L,)
take the condition's place: the pack's caption, cut to L; a dropped caption is the empty one
(every position padding), as GLIDE's unconditional input. A flip mirrors the picture, not the
caption: pretrain with `flip=False` when captions say where things are.

Upsampler crops (`crop_size` c > 0): a random c×c window of the S×S image, at a position
that is a multiple of the scale factor S/64, and the BSR degradation of that window, so
``image``/``noise`` are (3, c, c) and ``low_res`` (3, c·64/S, c·64/S). The network is
convolutional apart from its attention layers, so it learns from windows as from whole
pictures at a fraction of the cost (SR3 and Imagen train their upsamplers on crops).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from piti_cli.data.degrade import degrade_bsr
from piti_cli.data.images import fit_condition, resize_bicubic, to_uint8, to_unit
from piti_cli.data.kinds import NULL_VALUE
from piti_cli.data.reader import PackedDataset
from piti_cli.errors import InputError
from piti_cli.runtime import derive_seed


def subset_indices(count: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random `fraction` of `count` items (at least one)."""
    if fraction >= 1.0:
        return np.arange(count)
    keep = max(1, math.ceil(fraction * count))
    rng = np.random.default_rng([seed, 0xF4AC])
    return np.sort(rng.permutation(count)[:keep])


def flip_condition(kind: str, stored):
    """Mirror a stored condition left-right. Depth normals also get x negated: a mirrored
    surface faces the other way (the official DIODE loader flipped the picture only)."""
    if kind == "depth":
        normal = np.ascontiguousarray(stored["normal"][:, ::-1]).copy()
        normal[..., 0] *= -1.0
        return {
            "depth": np.ascontiguousarray(stored["depth"][:, ::-1]),
            "depth_valid": np.ascontiguousarray(stored["depth_valid"][:, ::-1]),
            "normal": normal,
        }
    return np.ascontiguousarray(np.asarray(stored)[:, ::-1])


def model_image(picture: np.ndarray, size: int) -> torch.Tensor:
    """Stored uint8 (H, W, 3) picture → (3, size, size) in [-1, 1]: PIL BICUBIC on the uint8
    picture, which stays uint8, then normalised (the official loader's 64-px target)."""
    return torch.from_numpy(to_unit(resize_bicubic(np.ascontiguousarray(picture), size)))


class TrainingStream(torch.utils.data.Dataset):
    """Map from a global sample number k to one training item (see module doc)."""

    def __init__(
        self,
        path: str,
        *,
        image_size: int,
        condition_size: int,
        condition_channels: int,
        seed: int = 0,
        uncond_p: float = 0.0,
        flip: bool = True,
        data_fraction: float = 1.0,
        low_res: bool = False,
        l0_mode: str = "correct",
        degradation: str = "bsr",
        crop_size: int = 0,
        caption_length: int = 0,
    ):
        self.pack = PackedDataset(path, as_tensors=False)
        self.caption_length = caption_length
        if caption_length and not self.pack.info.caption_length:
            raise InputError(f"{path}: the pack has no /captions for text-to-image pretraining")
        self.kind = self.pack.kind
        self.indices = subset_indices(len(self.pack), data_fraction, seed)
        self.image_size, self.condition_size = image_size, condition_size
        self.condition_channels = condition_channels
        self.seed, self.uncond_p, self.flip = seed, uncond_p, flip
        self.low_res, self.l0_mode, self.degradation = low_res, l0_mode, degradation
        self.crop_size = crop_size if crop_size and crop_size < image_size else 0
        self._perm_epoch, self._perm = -1, None
        if len(self.pack) == 0:
            raise InputError(f"{path}: the pack holds no samples")

    def __len__(self) -> int:  # the stream is endless; this is one epoch
        return len(self.indices)

    def item_index(self, k: int) -> int:
        """Pack index of global sample number k."""
        n = len(self.indices)
        epoch, pos = divmod(k, n)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._perm = torch.randperm(n, generator=g).numpy()
            self._perm_epoch = epoch
        return int(self.indices[self._perm[pos]])

    def __getitem__(self, k: int) -> dict:
        rng = np.random.default_rng([self.seed, k])
        raw = self.pack[self.item_index(k)]
        image, stored = raw["image"], raw["condition"]
        if self.flip and rng.random() < 0.5:
            image = np.ascontiguousarray(image[:, ::-1])
            if not self.caption_length:  # a caption run never uses the stored condition
                stored = flip_condition(self.kind, stored)
        drop = rng.random() < self.uncond_p
        if self.caption_length:
            item = {"k": k, "image": model_image(image, self.image_size), **self._caption(raw["caption"], drop)}
        else:
            item = {"k": k, "image": model_image(image, self.image_size), "condition": self._condition(stored, drop)}
        if self.low_res:
            if self.crop_size:
                item["image"], image = self._window(item["image"], image, rng)
            image = np.ascontiguousarray(image)
            if self.degradation == "bsr":
                low = degrade_bsr(image, rng, sf=4, l0_mode=self.l0_mode)
            else:  # clean: what the cascade hands over, PIL BICUBIC as the base model's targets
                low = resize_bicubic(image, image.shape[0] // 4)
            item["low_res"] = torch.from_numpy(to_unit(low))
        g = torch.Generator().manual_seed(derive_seed(self.seed, "noise", k))
        item["noise"] = torch.randn(item["image"].shape, generator=g)
        return item

    def _caption(self, ids: np.ndarray, drop: bool) -> dict:
        n = 0 if drop else min(len(ids), self.caption_length)
        tokens = torch.zeros(self.caption_length, dtype=torch.long)
        tokens[:n] = torch.from_numpy(ids[:n])
        return {"tokens": tokens, "token_mask": torch.arange(self.caption_length) < n}

    def _condition(self, stored, drop: bool) -> torch.Tensor:
        cond = self.pack.condition_tensor(stored)
        if cond.shape[0] != self.condition_channels:
            raise InputError(
                f"{self.pack.path}: {self.kind} conditions have {cond.shape[0]} channels, "
                f"the model's encoder takes {self.condition_channels}"
            )
        cond = fit_condition(cond, self.condition_size)
        return torch.full_like(cond, NULL_VALUE) if drop else cond

    def _window(self, hi: torch.Tensor, raw: np.ndarray, rng: np.random.Generator):
        """A random crop of the model-size image and the uint8 pixels of the same window
        (the stored ones when the pack holds pictures at the model's size)."""
        c, sf = self.crop_size, self.image_size // 64
        y, x = (int(v) * sf for v in rng.integers(0, (self.image_size - c) // sf + 1, size=2))
        hi = hi[:, y:y + c, x:x + c]
        if raw.shape[0] == self.image_size and raw.shape[1] == self.image_size:
            return hi, raw[y:y + c, x:x + c]
        return hi, to_uint8(hi)


class StepBatches(torch.utils.data.Sampler):
    """Batches of global sample numbers for steps start_step, start_step+1, …, end_step−1,
    this process's slice of each global batch."""

    def __init__(self, start_step: int, end_step: int, global_batch: int, rank: int = 0, world_size: int = 1):
        self.start, self.end = start_step, end_step
        self.global_batch, self.rank, self.world = global_batch, rank, world_size
        self.local = global_batch // world_size

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self):
        for step in range(self.start, self.end):
            first = step * self.global_batch + self.rank * self.local
            yield list(range(first, first + self.local))


def make_loader(stream: TrainingStream, batches: StepBatches, num_workers: int = 0):
    return torch.utils.data.DataLoader(
        stream, batch_sampler=batches, num_workers=num_workers,
        persistent_workers=False, pin_memory=torch.cuda.is_available(),
    )
