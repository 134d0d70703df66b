"""Sampling split over processes (`torchrun --nproc-per-node N -m piti_cli sample ...`).

torchrun's environment (RANK, WORLD_SIZE, ...) puts each process in a group (NCCL on GPUs,
gloo on CPUs) through `piti_cli.distributed`; one process is the same code with one
rank. Each rank reads and checks every N-th input (and every N-th earlier output), `gather`
shares the results, then each takes every N-th pending picture, reads its conditions and
writes its own PNGs: no rank holds all the conditions. `agree` is the one meeting point: all ranks report how their part went, and if
one failed every rank stops with that rank's one-line message (rank 0 says it, the others
stop quietly with `ShardStopped`).
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import torch.distributed as dist

from piti_cli.errors import PitiError
from piti_cli.distributed import DistInfo

T = TypeVar("T")


class ShardStopped(PitiError):
    """Another rank failed; rank 0 reports the failure, this rank exits without a message."""


def my_part(items: Sequence[T], info: DistInfo) -> list[T]:
    """Every `world_size`-th item from this rank's index: parts differ by at most one."""
    return list(items[info.rank::info.world_size])


def gather(part: list[T], info: DistInfo) -> list[T]:
    """Every rank's `my_part` results put back in the order of the whole, on every rank."""
    if not info.enabled:
        return list(part)
    parts: list = [None] * info.world_size
    dist.all_gather_object(parts, part)
    total = sum(len(p) for p in parts)
    return [parts[i % info.world_size][i // info.world_size] for i in range(total)]


def agree(info: DistInfo, error: BaseException | None) -> None:
    """Meet all ranks; if any failed, stop every rank with the first failure (lowest rank).

    Rank 0 raises it (its own error unchanged, another rank's as a `PitiError` naming the
    rank); the other ranks raise `ShardStopped`, which the CLI ends without a message."""
    if not info.enabled:
        if error is not None:
            raise error
        return
    message = None if error is None else (str(error) if isinstance(error, PitiError) else f"{type(error).__name__}: {error}")
    messages: list = [None] * info.world_size
    dist.all_gather_object(messages, message)
    failed = [(rank, m) for rank, m in enumerate(messages) if m is not None]
    if not failed:
        return
    rank, text = failed[0]
    if not info.is_main:
        raise ShardStopped(text) from error
    if rank == 0:
        raise error
    raise PitiError(f"rank {rank}: {text}")
