"""Rendering shared by every command: errors, progress bars, tables.

On a terminal progress is a live rich bar; elsewhere (CI, pipes) it is plain log lines,
so logs stay readable.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

from rich.console import Console


def _data_console() -> Console:
    """stdout. On a terminal rich wraps to its width; in a pipe or a file nothing is wrapped or
    cut (tables take their natural width), so scripts and `| cat` get whole lines."""
    terminal = Console()
    return terminal if terminal.is_terminal else Console(soft_wrap=True, width=1 << 16)


console = _data_console()
err_console = Console(stderr=True)


def _print_plain(label: str, style: str, message: str) -> None:
    """One line on stderr; `message` is plain text, never markup or emoji codes (file names
    may hold `[/]`, `[bold]` or `:smile:`), and is collapsed to one line."""
    from rich.text import Text

    from piti_cli.errors import one_line

    line = Text(label, style=style)
    line.append(" " + one_line(message))
    err_console.print(line, highlight=False, soft_wrap=True, emoji=False, markup=False)


def print_error(message: str) -> None:
    _print_plain("error:", "bold red", message)


def print_warning(message: str) -> None:
    _print_plain("warning:", "yellow", message)


def print_skipped(skipped, shown: int = 10) -> None:
    """The batch policy's list: one warning line per skipped input (path, why), the first `shown`."""
    for path, why in skipped[:shown]:
        why = str(why)
        print_warning(f"skipped {why}" if why.startswith(f"{path}:") else f"skipped {path}: {why}")
    if len(skipped) > shown:
        print_warning(f"... and {len(skipped) - shown} more skipped")


ProgressFn = Callable[..., None]


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None, unit: str = "") -> Iterator[ProgressFn]:
    """Yield `update(done, total=None, **fields)`; renders a bar on a TTY, log lines otherwise.

    Extra keyword fields (loss=..., it_s=...) are shown after the bar. Two are special:
    `stage="upsampler"` is shown beside the description, and `eta=seconds` (None: not known
    yet) replaces the estimate from the bar's own rate, for work whose parts run at different
    speeds (the cascade's stages).
    """
    if err_console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

        class Left(ProgressColumn):
            def render(self, task):
                eta = task.fields["eta"] if "eta" in task.fields else task.time_remaining
                return f"left {_clock(eta)}"

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            Left(),
            TextColumn("{task.fields[info]}"),
            console=err_console,
            transient=False,
        ) as progress:
            task = progress.add_task(description, total=total, info="")

            def update(done: int, total: int | None = None, **fields) -> None:
                label, special, info = _special(description, fields)
                progress.update(task, completed=done, total=total if total is not None else progress.tasks[0].total,
                                info=info, description=label, **special)

            yield update
    else:
        yield LogLines(description, total, unit=unit).update


class LogLines:
    """Progress off a terminal (a log, CI): one line per change worth reading — the count moved
    (at most every `every` seconds) or the stage changed, and always the last — each with
    done/total, the rate (it/s, or s/it below one per second) and the time left."""

    def __init__(self, description: str, total: int | None, every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, write: Callable[[str], None] | None = None,
                 unit: str = ""):
        self.description, self.total, self.every, self.clock, self.unit = description, total, every, clock, unit
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.shown: tuple | None = None  # (done, label) of the last line
        self.at = -float("inf")
        self.start: tuple[float, float] | None = None  # (time, done) of the first report

    def update(self, done: float, total: int | None = None, **fields) -> None:
        now = self.clock()
        tot = total if total is not None else self.total
        if self.start is None:
            self.start = (now, done)
        label, special, info = _special(self.description, fields)
        last = tot is not None and done >= tot
        if self.shown is not None:
            same_count, same_stage = int(done) == int(self.shown[0]), label == self.shown[1]
            if (same_count and same_stage and not last) or (same_stage and not last and now - self.at < self.every):
                return
            if last and self.shown == (done, label):
                return
        self.shown, self.at = (done, label), now
        seconds, first = now - self.start[0], self.start[1]
        rate = (done - first) / seconds if seconds > 0 and done > first else None
        eta = special["eta"] if "eta" in special else (
            (tot - done) / rate if rate and tot is not None else (0.0 if last else None))
        if self.unit == "B":  # bytes: MB and MB/s
            parts = [f"{done / 1e6:.1f}/{tot / 1e6 if tot else 0:.1f} MB" if tot else f"{done / 1e6:.1f} MB"]
            if rate:
                parts.append(f"{rate / 1e6:.1f} MB/s")
        else:
            parts = [f"{int(done)}/{tot if tot is not None else '?'} done"]
            if rate:
                parts.append(_rate(rate))
        if not last:
            parts.append(f"{_clock(eta)} left")
        line = f"{label}: {', '.join(parts)}"
        self.write(f"{line}  {info}" if info else line)


def _special(description: str, fields: dict) -> tuple[str, dict, str]:
    """(description with the stage, {eta} if given, the other fields as text)."""
    fields = dict(fields)
    stage = fields.pop("stage", None)
    special = {"eta": fields.pop("eta")} if "eta" in fields else {}
    rate = fields.pop("it_s", None)
    info = "  ".join([f"{k}={_fmt(v)}" for k, v in fields.items()] + ([_rate(rate)] if rate else []))
    return (f"{description} ({stage})" if stage else description), special, info


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _rate(per_second: float) -> str:
    """tqdm's convention: it/s from one per second up, s/it below."""
    return f"{per_second:.2f} it/s" if per_second >= 1 else f"{1 / per_second:.2f} s/it"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
