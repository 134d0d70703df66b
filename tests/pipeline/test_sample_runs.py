"""Dataset-scale sampling: per-picture noise, resuming, provenance, pairing, the grid."""

import hashlib
import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from piti_cli.data.palettes import coco_stuff_palette
from piti_cli.errors import InputError
from piti_cli.pipeline.cascade import StageSettings
from piti_cli.pipeline.sample import SIDECAR, SampleJob, run_sample
from piti_cli.runtime import cpu_has_bf16

BASE = StageSettings(steps="3", guidance=2.0)
UP = StageSettings(steps="2", guidance=1.0, init_scale=0.997)


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    """Five small colour masks in the COCO-Stuff palette (64 px: the tiny encoder's size)."""
    folder = tmp_path_factory.mktemp("masks")
    rng = np.random.default_rng(0)
    colours = coco_stuff_palette()[:6].astype(np.uint8)
    for i in range(5):
        labels = rng.integers(0, len(colours), (4, 4)).repeat(16, 0).repeat(16, 1)
        Image.fromarray(colours[labels]).save(folder / f"m{i}.png")
    return folder


def job(tiny_mask_models, masks, out, **kw) -> SampleJob:
    base, up = tiny_mask_models
    settings = dict(cond=str(masks), out=Path(out), base=str(base), upsampler=str(up), base_settings=BASE,
                    upsample_settings=UP, device="cpu", precision="fp32", base_only=True)
    settings.update(kw)
    return SampleJob(**settings)


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_picture_is_the_same_at_any_batch_size_and_on_a_rerun(tiny_mask_models, masks, tmp_path, precision):
    """fp32 on the CPU calls the network one row at a time; bf16's oneDNN kernels are
    batch-invariant where bf16 is native. Both stages, guided, byte for byte."""
    if precision == "bf16" and not cpu_has_bf16():
        pytest.skip("bf16 is emulated on this CPU; batch invariance measured only with native bf16")
    for b in (1, 4):
        run_sample(job(tiny_mask_models, masks, tmp_path / str(b), batch_size=b, precision=precision, limit=4,
                       base_only=False))
    again = run_sample(job(tiny_mask_models, masks, tmp_path / "again", batch_size=4, precision=precision,
                           limit=4, base_only=False))
    assert len(again.images) == 4
    assert pngs(tmp_path / "1") == pngs(tmp_path / "4") == pngs(tmp_path / "again")


def test_a_killed_run_resumes_to_the_same_files(tiny_mask_models, masks, tmp_path):
    full = run_sample(job(tiny_mask_models, masks, tmp_path / "full", batch_size=2, num_samples=2, limit=3))
    def kill_after_first_batch(done, total, **fields):
        if done > 2:  # in the second batch
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        run_sample(job(tiny_mask_models, masks, tmp_path / "cut", batch_size=2, num_samples=2, limit=3),
                   kill_after_first_batch)
    assert sorted(p.name for p in (tmp_path / "cut").glob("*.png")) == ["m0_0.png", "m0_1.png"]
    assert not (tmp_path / "cut" / SIDECAR).exists()
    resumed = run_sample(job(tiny_mask_models, masks, tmp_path / "cut", batch_size=2, num_samples=2, limit=3))
    assert [p.name for p in resumed.kept] == ["m0_0.png", "m0_1.png"] and len(resumed.images) == 4
    assert pngs(tmp_path / "cut") == pngs(tmp_path / "full") and len(full.images) == 6


def test_changed_settings_refuse_to_mix_and_overwrite_redoes(tiny_mask_models, masks, tmp_path):
    out = tmp_path / "o"
    run_sample(job(tiny_mask_models, masks, out, limit=2))
    before = pngs(out)
    with pytest.raises(InputError) as err:
        run_sample(job(tiny_mask_models, masks, out, limit=2, seed=1))
    assert str(err.value) == (f"{out / 'm0.png'}: was made with other settings (seed differs); "
                              "rerun with --overwrite to redo it, or choose another --out")
    changed = job(tiny_mask_models, masks, out, limit=2, base_settings=replace(BASE, guidance=3.0))
    with pytest.raises(InputError, match=r"m0.png: was made with other settings \(base.guidance differs\)"):
        run_sample(changed)
    assert pngs(out) == before  # refusing wrote nothing
    redone = run_sample(job(tiny_mask_models, masks, out, limit=2, seed=1, overwrite=True))
    fresh = run_sample(job(tiny_mask_models, masks, tmp_path / "fresh", limit=2, seed=1))
    assert len(redone.images) == 2 and pngs(out) == pngs(tmp_path / "fresh") != before
    assert len(fresh.images) == 2


def test_pngs_carry_their_settings_and_the_record_keeps_every_run(tiny_mask_models, masks, tmp_path):
    base, up = tiny_mask_models
    out = tmp_path / "o"
    run_sample(job(tiny_mask_models, masks, out, limit=2, base_only=False, seed=5))
    run_sample(job(tiny_mask_models, masks, out, limit=3, base_only=False, seed=5))
    with Image.open(out / "m1.png") as im:
        assert im.size == (256, 256)
        record = json.loads(im.text["piti"])
    from piti_cli import __version__

    assert (record["condition"], record["sample_index"], record["seed"]) == ("m1", 0, 5)
    assert record["base"]["sha256"] == hashlib.sha256(base.read_bytes()).hexdigest()
    assert record["upsampler"]["sha256"] == hashlib.sha256(up.read_bytes()).hexdigest()
    assert (record["base"]["steps"], record["base"]["guidance"], record["base"]["sampler"]) == (3, 2.0, "ancestral")
    assert (record["upsampler"]["steps"], record["upsampler"]["init_scale"]) == (2, 0.997)
    assert record["precision"] == "fp32" and record["piti_version"] == __version__
    sidecar = json.loads((out / SIDECAR).read_text())
    assert [r["written"] for r in sidecar["runs"]] == [["m0.png", "m1.png"], ["m2.png"]]
    assert [r["kept"] for r in sidecar["runs"]] == [[], ["m0.png", "m1.png"]]
    assert sidecar["pictures"] == {"m0.png": 0, "m1.png": 0, "m2.png": 1}
    assert [r["base"]["steps"] for r in sidecar["runs"]] == [3, 3]  # a count is a number, typed


def test_a_picture_recorded_with_its_step_count_as_text_is_still_kept(tiny_mask_models, masks, tmp_path):
    """Records written before counts were typed kept `"steps": "3"`: a rerun with the same
    settings keeps that picture instead of calling it a conflict."""
    from PIL.PngImagePlugin import PngInfo

    out = tmp_path / "o"
    run_sample(job(tiny_mask_models, masks, out, limit=1))
    with Image.open(out / "m0.png") as im:
        record, pixels = json.loads(im.text["piti"]), im.copy()
    record["base"]["steps"] = str(record["base"]["steps"])
    info = PngInfo()
    info.add_text("piti", json.dumps(record))
    pixels.save(out / "m0.png", pnginfo=info)
    again = run_sample(job(tiny_mask_models, masks, out, limit=1))
    assert [p.name for p in again.kept] == ["m0.png"] and not again.images


def test_grid_shows_each_condition_beside_its_samples(tiny_mask_models, masks, tmp_path):
    out = tmp_path / "g"
    run_sample(job(tiny_mask_models, masks, out, limit=2, num_samples=2, grid=True))
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (2 * 64, 3 * 64, 3)
    for r in range(2):
        cells = [grid[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64] for c in range(3)]
        assert np.array_equal(cells[0], np.asarray(Image.open(masks / f"m{r}.png").convert("RGB")))
        for k in range(2):
            assert np.array_equal(cells[k + 1], np.asarray(Image.open(out / f"m{r}_{k}.png")))


def test_a_real_base_needs_its_upsampler(tiny_mask_models, tiny_sketch_base, masks, tmp_path):
    with pytest.raises(InputError, match=r"base.pt: a real base model needs its own upsampler .* "
                                         r"add --upsampler piti-upsample-mask, or --base-only"):
        run_sample(job(tiny_mask_models, masks, tmp_path / "a", base_only=False, upsampler=None))
    with pytest.raises(InputError, match="add --upsampler piti-upsample-sketch"):
        run_sample(job(tiny_mask_models, masks, tmp_path / "b", base_only=False, upsampler=None,
                       base=str(tiny_sketch_base)))
    with pytest.raises(InputError, match=r"up.pt: the bundled demo model .* is used only with its demo upsampler"):
        run_sample(job(tiny_mask_models, masks, tmp_path / "c", base_only=False, base=None))
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, jobs: list, results: Path, watch: str | None = None) -> None:
    """One torchrun-like process: the env-based init torchrun gives, then `run_sample`.
    With `watch`, the outcome lists the files under that folder this process opened (PIL)."""
    from PIL import Image as PILImage

    from piti_cli.errors import PitiError
    from piti_cli.pipeline.shard import ShardStopped

    opened = []
    if watch is not None:
        real_open = PILImage.open

        def recording_open(fp, *args, **kwargs):
            if str(fp).startswith(watch):
                opened.append(Path(fp).name)
            return real_open(fp, *args, **kwargs)

        PILImage.open = recording_open

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        result = run_sample(jobs[rank])
        outcome = {"images": [p.name for p in result.images], "sidecar": result.sidecar is not None}
        if watch is not None:
            outcome["opened"] = opened
    except (PitiError, ShardStopped) as err:
        outcome = {"error": type(err).__name__, "message": str(err)}
    (results / f"rank{rank}.json").write_text(json.dumps(outcome))


def _spawn(jobs: list, tmp_path: Path, watch: Path | None = None) -> list[dict]:
    import torch.multiprocessing as mp

    args = (len(jobs), _free_port(), jobs, tmp_path, None if watch is None else str(watch))
    mp.spawn(_rank, args=args, nprocs=len(jobs), join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(len(jobs))]


@pytest.mark.slow
def test_two_gloo_processes_write_the_same_pictures_as_one(tiny_mask_models, masks, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank runs: fp32 CPU kernels split their sums by thread count
    try:  # one process at batch sizes 1 and 4, two processes at batch size 2: the same bytes
        for b in (1, 4):
            run_sample(job(tiny_mask_models, masks, tmp_path / f"one-{b}", batch_size=b, base_only=False, limit=3))
    finally:
        torch.set_num_threads(threads)
    shared = job(tiny_mask_models, masks, tmp_path / "two", batch_size=2, base_only=False, limit=3)
    outcomes = _spawn([shared, shared], tmp_path)
    assert pngs(tmp_path / "two") == pngs(tmp_path / "one-1") == pngs(tmp_path / "one-4")
    assert len(pngs(tmp_path / "two")) == 3
    assert outcomes[0] == {"images": ["m0.png", "m1.png", "m2.png"], "sidecar": True}  # rank 0 lists all
    assert outcomes[1] == {"images": ["m1.png"], "sidecar": False}
    record = json.loads((tmp_path / "two" / SIDECAR).read_text())
    assert len(record["runs"]) == 1 and record["runs"][0]["world_size"] == 2
    assert record["pictures"] == {"m0.png": 0, "m1.png": 0, "m2.png": 0}


@pytest.mark.slow
def test_each_rank_reads_only_its_share_of_the_inputs(tiny_mask_models, masks, tmp_path):
    """Rank r checks inputs r, r + 2, ... and samples pictures r, r + 2, ...: each of its
    masks is opened twice (check, then its batch), the other rank's never."""
    shared = job(tiny_mask_models, masks, tmp_path / "o", batch_size=1, limit=4)
    outcomes = _spawn([shared, shared], tmp_path, watch=masks)
    assert sorted(outcomes[0]["opened"]) == ["m0.png", "m0.png", "m2.png", "m2.png"]
    assert sorted(outcomes[1]["opened"]) == ["m1.png", "m1.png", "m3.png", "m3.png"]
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["m0.png", "m1.png", "m2.png", "m3.png"]


@pytest.mark.slow
def test_one_ranks_bad_input_stops_every_rank_with_one_message(tiny_mask_models, masks, tmp_path):
    good = job(tiny_mask_models, masks, tmp_path / "o", limit=2)
    bad = replace(good, cond=str(tmp_path / "missing"))
    outcomes = _spawn([good, bad], tmp_path)
    assert outcomes[0] == {"error": "PitiError", "message": f"rank 1: {tmp_path / 'missing'}: no such file or folder"}
    assert outcomes[1]["error"] == "ShardStopped"
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.png"))


@pytest.mark.slow
def test_torchrun_as_users_launch_it_matches_one_process_with_one_thread(tmp_path):
    """The README's promise, exactly as it states it: `torchrun --nproc-per-node 2 -m piti_cli
    sample` (torchrun's own launch, one thread per process) writes the bytes a one-process run
    writes with OMP_NUM_THREADS=1."""
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    examples = Path(__file__).resolve().parents[2] / "examples" / "mask"
    args = ["sample", "--cond", str(examples), "--limit", "3", "--steps", "3", "--upsample-steps", "2",
            "--precision", "fp32", "--device", "cpu", "--seed", "4"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "piti_cli", *args, "--out", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m", "piti_cli",
                          *args, "--out", str(tmp_path / "two")], env=dict(os.environ), capture_output=True,
                         text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "one").glob("*.png"))
    assert len(names) == 3 and names == sorted(p.name for p in (tmp_path / "two").glob("*.png"))
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
