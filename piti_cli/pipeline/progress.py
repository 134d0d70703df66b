"""Progress of long sampling runs, reported through callbacks (the core never prints).

`offset` turns a sub-task's `(done, total)` into the enclosing task's count: one helper for
every "stage k of a cascade" or "batch b of a run" closure. `SampleProgress` follows a run of
batches through both stages and reports pictures done / total, the stage, and the time left
estimated from each stage's own measured rate (an upsampler step costs ~10× a base step).
"""

from __future__ import annotations

import time
from typing import Callable

Progress = Callable[[int, int], None] | None
# report(pictures_done, pictures_total, stage=..., eta=seconds or None)
Report = Callable[..., None]


def offset(progress: Progress, start: int, total: int) -> Progress:
    """A callback for a sub-task whose own count starts at `start` of `total` in `progress`."""
    if progress is None:
        return None
    return lambda done, _sub_total: progress(start + done, total)


class SampleProgress:
    """Pictures done / total and time left over batches of `base_steps` + `up_steps` steps.

    Seconds per (step × picture) are measured per stage; the time left is the remaining
    steps of each stage times that stage's rate. Until the upsampler has run, its rate is the
    base's times `up_per_base` (the ratio of their FLOPs, `cascade.step_cost_ratio`); without
    that ratio the time left is None until both stages have been timed.
    """

    STAGES = ("base", "upsampler")

    def __init__(self, report: Report | None, total: int, done: int, base_steps: int, up_steps: int,
                 clock: Callable[[], float] = time.monotonic, up_per_base: float | None = None):
        self.report, self.total, self.done = report, total, done
        self.up_per_base = up_per_base  # an upsampler step's cost in base steps, until it is measured
        self.steps = {"base": base_steps, "upsampler": up_steps}
        self.clock = clock
        self.seconds = {s: 0.0 for s in self.STAGES}
        self.work = {s: 0 for s in self.STAGES}  # steps × pictures measured
        self.remaining = total - done  # pictures not yet started

    def rate(self, stage: str) -> float | None:
        return self.seconds[stage] / self.work[stage] if self.work[stage] else None

    def eta(self, left: dict[str, int], size: int) -> float | None:
        """Seconds left when the batch in flight (`size` pictures) has `left[stage]` steps to go."""
        rates = {s: self.rate(s) for s in self.STAGES if self.steps[s]}
        if rates.get("upsampler", 0) is None and rates.get("base") is not None and self.up_per_base:
            rates["upsampler"] = rates["base"] * self.up_per_base  # estimated until its first step
        if any(r is None for r in rates.values()):
            return None
        per_picture = sum(self.steps[s] * r for s, r in rates.items())
        return sum(left[s] * size * r for s, r in rates.items()) + self.remaining * per_picture

    def start(self) -> None:
        self._emit(self.done, "base", None)

    def batch(self, size: int) -> Progress:
        """The cascade's step callback `(done, total)` for the next batch of `size` pictures."""
        self.remaining -= size
        last = [self.clock()]
        base_steps, up_steps = self.steps["base"], self.steps["upsampler"]

        def step(done: int, _total: int) -> None:
            now = self.clock()
            stage = "base" if done <= base_steps else "upsampler"
            self.seconds[stage] += now - last[0]
            self.work[stage] += size
            last[0] = now
            left = {"base": base_steps - min(done, base_steps), "upsampler": up_steps - max(0, done - base_steps)}
            self._emit(self.done + size * done / (base_steps + up_steps), stage, self.eta(left, size))

        return step

    def finished(self, size: int) -> None:
        """The batch in flight is written."""
        self.done += size
        self._emit(self.done, "upsampler" if self.steps["upsampler"] else "base", self.eta({"base": 0, "upsampler": 0}, 0))

    def _emit(self, done: float, stage: str, eta: float | None) -> None:
        if self.report is not None:
            self.report(done, self.total, stage=stage, eta=eta)
