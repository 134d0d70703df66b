"""Process groups for torchrun (RANK / WORLD_SIZE / LOCAL_RANK): shared by sampling and training.

One process per GPU (nccl) or per CPU worker (gloo). Without those variables everything
runs in one process and these helpers are no-ops.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from piti_cli.runtime import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, local), device


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device_name: str) -> Iterator[tuple[DistInfo, object]]:
    """(this rank, its device); leaves the group at the end if it joined one here.

    On a normal exit the ranks meet once more before leaving, so that none tears down its
    connections while another is still using them (rank 0 writes its last files after the
    last collective; a rank that left first was once seen to abort in gloo's teardown in CI)."""
    joined_here = not (dist.is_available() and dist.is_initialized())
    info, device = setup(device_name)
    try:
        yield info, device
        if joined_here and info.enabled:
            dist.barrier()
    finally:
        if joined_here and info.enabled:
            cleanup()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_cat(info: DistInfo, x: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-shaped tensors of all processes in rank order (a copy when alone)."""
    if not info.enabled:
        return x.clone()
    parts = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def mean_over(info: DistInfo, x: torch.Tensor) -> torch.Tensor:
    if not info.enabled:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / info.world_size
