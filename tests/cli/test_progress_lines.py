"""Progress off a terminal (`cli.ui.LogLines`): one line per change worth reading, with
done/total, the rate in tqdm's convention and the time left (closed forms on a fake clock)."""

from __future__ import annotations

from piti_cli.cli.ui import LogLines


def run(events, total=4, every=5.0):
    lines, now = [], [0.0]
    log = LogLines("sampling", total, every=every, clock=lambda: now[0], write=lines.append)
    for t, done, fields in events:
        now[0] = t
        log.update(done, **fields)
    return lines


def test_repeats_are_not_printed_and_the_last_line_always_is():
    lines = run([(0, 0, {}), (1, 0, {}), (2, 0, {}), (3, 1, {}), (10, 2, {}), (11, 3, {}), (12, 4, {}), (13, 4, {})])
    assert lines == [
        "sampling: 0/4 done, -:--:-- left",
        # t = 3: the count moved but within 5 s of the last line: not shown
        "sampling: 2/4 done, 5.00 s/it, 0:00:10 left",  # 2 steps in 10 s; 2 left at 5 s each
        "sampling: 4/4 done, 3.00 s/it",  # 4 in 12 s; the last line once
    ]


def test_a_stage_change_is_shown_at_once_with_its_given_time_left():
    lines = run([(0, 0, {"stage": "base", "eta": None}), (1, 1, {"stage": "upsampler", "eta": 30.0})], total=10)
    assert lines == ["sampling (base): 0/10 done, -:--:-- left",
                     "sampling (upsampler): 1/10 done, 1.00 it/s, 0:00:30 left"]


def test_training_fields_read_as_rates():
    lines = run([(0, 0, {"loss": 0.5, "it_s": 0.25}), (6, 4, {"loss": 0.25, "it_s": 2.0})], total=8)
    assert lines[0] == "sampling: 0/8 done, -:--:-- left  loss=0.5  4.00 s/it"
    assert lines[1].endswith("loss=0.25  2.00 it/s")


def test_bytes_read_as_megabytes():
    lines, now = [], [0.0]
    log = LogLines("hashing", 4_000_000, clock=lambda: now[0], write=lines.append, unit="B")
    log.update(0)
    now[0] = 2.0
    log.update(4_000_000)
    assert lines == ["hashing: 0.0/4.0 MB, -:--:-- left", "hashing: 4.0/4.0 MB, 2.0 MB/s"]
