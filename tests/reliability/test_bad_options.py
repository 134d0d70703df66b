"""Bad option values, over every command that takes them: refused at parse time (exit 2) or
by the core (exit 1), with one line naming the option, no traceback, nothing written."""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import pytest
import torch

from tests.reliability.conftest import check_refused, invoke, nothing_finished

EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples" / "mask")
SAMPLE = ["sample", "--base-only"]
EDIT = ["edit", "--edited", "e.png"]
FINETUNE = ["finetune"]
UPSAMPLE = ["upsample-train"]

# (command prefix, bad option and value, the option name the message must carry)
CASES = [
    (SAMPLE, ["--guidance", "nan"], "--guidance"),
    (SAMPLE, ["--guidance", "inf"], "--guidance"),
    (SAMPLE, ["--guidance", "-1"], "--guidance"),
    (SAMPLE, ["--eta", "nan"], "--eta"),
    (SAMPLE, ["--eta", "-0.5"], "--eta"),
    (SAMPLE, ["--steps", "0"], "--steps"),
    (SAMPLE, ["--steps", "ddim0"], "--steps"),
    (SAMPLE, ["--steps", "10,0"], "--steps"),
    (SAMPLE, ["--steps", "x"], "--steps"),
    (SAMPLE, ["--steps", "ddim"], "--steps"),
    (SAMPLE, ["--upsample-steps", "0"], "--upsample-steps"),
    (SAMPLE, ["--limit", "-1"], "--limit"),
    (SAMPLE, ["--limit", "0"], "--limit"),
    (SAMPLE, ["--num-samples", "0"], "--num-samples"),
    (SAMPLE, ["--batch-size", "0"], "--batch-size"),
    (SAMPLE, ["--seed", "-1"], "--seed"),
    (SAMPLE, ["--sampler", "euler"], "--sampler"),
    (SAMPLE, ["--upsample-sampler", "euler"], "--upsample-sampler"),
    (SAMPLE, ["--precision", "fp64"], "--precision"),
    (SAMPLE, ["--device", "tpu"], "--device"),
    (SAMPLE, ["--device", "mps"], "--device"),
    (SAMPLE, ["--device", "cuda:x"], "--device"),
    (SAMPLE, ["--device", "cpu:0"], "--device"),
    (EDIT, ["--guidance", "nan"], "--guidance"),
    (EDIT, ["--steps", "0"], "--steps"),
    (EDIT, ["--device", "mps"], "--device"),
    (EDIT, ["--precision", "half"], "--precision"),
    (FINETUNE, ["--lr", "nan"], "--lr"),
    (FINETUNE, ["--lr", "0"], "--lr"),
    (FINETUNE, ["--lr", "-1e-4"], "--lr"),
    (FINETUNE, ["--ema-rate", "2"], "--ema-rate"),
    (FINETUNE, ["--ema-rate", "abc"], "--ema-rate"),
    (FINETUNE, ["--uncond-p", "1.5"], "--uncond-p"),
    (FINETUNE, ["--data-fraction", "0"], "--data-fraction"),
    (FINETUNE, ["--max-steps", "0"], "--max-steps"),
    (FINETUNE, ["--stage", "both"], "--stage"),
    (FINETUNE, ["--timestep-sampler", "cosine"], "--timestep-sampler"),
    (FINETUNE, ["--precision", "fp64"], "--precision"),
    (FINETUNE, ["--batch-size", "0"], "--batch-size"),
    (FINETUNE, ["--grad-clip", "inf"], "--grad-clip"),
    (FINETUNE, ["--weight-decay", "nan"], "--weight-decay"),
    (FINETUNE, ["--device", "tpu"], "--device"),
    (FINETUNE, ["--input-kind", "depth"], "--input-kind"),
    (FINETUNE, ["--sample-steps", "ddim0"], "--sample-steps"),
    (UPSAMPLE, ["--disc-lr", "nan"], "--disc-lr"),
    (UPSAMPLE, ["--perceptual-weight", "-1"], "--perceptual-weight"),
    (UPSAMPLE, ["--perceptual", "alex"], "--perceptual"),
    (UPSAMPLE, ["--adv-weight", "inf"], "--adv-weight"),
    (UPSAMPLE, ["--crop-size", "-1"], "--crop-size"),
    (["eval", "fid", EXAMPLES, "--ref", EXAMPLES], ["--features", "dino"], "--features"),  # paths must exist
    (["eval", "fid", EXAMPLES, "--ref", EXAMPLES], ["--max-fid", "nan"], "--max-fid"),
    (["eval", "fid", EXAMPLES, "--ref", EXAMPLES], ["--device", "mps"], "--device"),
    (["eval", "lpips", "folder"], ["--net", "squeeze"], "--net"),
    (["prep", "masks", "labels", "out"], ["--dataset", "cityscapes"], "--dataset"),
    (["prep", "hed", "src", "out"], ["--backend", "canny"], "--backend"),
    (["prep", "hed", "src", "out"], ["--threshold", "2"], "--threshold"),
    (["prep", "hed", "src", "out"], ["--device", "tpu"], "--device"),
    (["prep", "degrade", "src", "out"], ["--sf", "0"], "--sf"),
    (["prep", "degrade", "src", "out"], ["--l0-mode", "fast"], "--l0-mode"),
    (["prep", "pack", "generic", "root", "out"], ["--condition", "depth"], "--condition"),
    (["prep", "pack", "generic", "root", "out"], ["--palette", "voc"], "--palette"),
    (FINETUNE, ["--preset", "foo"], "--preset"),
    (UPSAMPLE, ["--preset", "foo"], "--preset"),
    (FINETUNE, ["--condition-size", "17"], "--condition-size"),
    (["app"], ["--max-file-size", "abc"], "--max-file-size"),
    (["app"], ["--max-file-size", "20"], "--max-file-size"),  # Gradio wants a unit
]


def _args(prefix, bad, tmp_path):
    out = tmp_path / "out"
    if prefix is SAMPLE:
        return [*prefix, "--cond", tmp_path / "c.png", "--out", out, *bad], out
    if prefix is EDIT:
        return [*prefix, "--cond", tmp_path / "c.png", "--out", out, *bad], out
    if prefix in (FINETUNE, UPSAMPLE):
        return [*prefix, "--run-dir", out, "--data", tmp_path / "d.h5", *bad], out
    return [*(out if a == "out" else a for a in prefix), *bad], out


@pytest.mark.parametrize("prefix,bad,name", CASES, ids=[f"{p[0]}{'-' + p[1] if len(p) > 1 and p[0] in ('prep', 'eval') else ''}:{' '.join(b)}" for p, b, _ in CASES])
def test_bad_option_is_refused_in_one_line(prefix, bad, name, tmp_path):
    args, out = _args(prefix, bad, tmp_path)
    result = invoke(*args)
    line = check_refused(result, name, code=2)
    assert any(word in line for word in (bad[1], "must", "not", "should")), line
    assert not out.exists() and nothing_finished(tmp_path)


@pytest.mark.parametrize("bad,name", [
    (["--precision", "fp16", "--device", "cpu"], "--precision fp16"),
] + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "--device cuda")]))
def test_option_refused_by_the_core_in_one_line(bad, name, tmp_path):
    from tests.reliability.conftest import colour_mask

    cond = colour_mask(tmp_path / "c.png")
    result = invoke("sample", "--base-only", "--cond", cond, "--out", tmp_path / "out", *bad)
    check_refused(result, name, code=1)
    assert not (tmp_path / "out").exists()


def test_rejected_choice_never_imports_torch():
    script = ("import sys; sys.argv = ['piti', 'sample', '--cond', 'x.png', '--sampler', 'euler']\n"
              "from piti_cli.cli import main\n"
              "try:\n    main.run()\nexcept SystemExit as e:\n    print('EXIT', e.code)\n"
              "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["EXIT", "2", "NO_TORCH"], proc.stdout + proc.stderr
    assert "'euler' is not one of 'ancestral', 'ddim', 'dpmpp-2m'" in proc.stderr


def test_help_lists_choices_and_every_option_has_help():
    import typer

    from piti_cli.cli.main import app

    def walk(command, path):
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                assert param.help, f"{path} {param.opts[0]} has no help text"
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")
        yield path

    commands = list(walk(typer.main.get_command(app), "piti"))
    assert len(commands) > 10
    help_text = invoke("sample", "--help", env={"COLUMNS": "300"}).output
    assert "--sampler [ancestral|ddim|dpmpp-2m|dpmpp-3m]" in help_text and "[auto|fp32|bf16|fp16]" in help_text
    assert "BOOLEAN" not in help_text and "<bool>" not in help_text  # flags (--help too) take no value
    assert "--ema-rate RATE" in invoke("finetune", "--help", env={"COLUMNS": "300"}).output


def test_sampler_choices_match_the_core():
    from typing import get_args

    from piti_cli.cli.options import L0Mode, PackDataset, Sampler
    from piti_cli.data.l0 import L0_MODES
    from piti_cli.data.schema import DATASETS
    from piti_cli.diffusion.samplers import SAMPLERS

    assert get_args(Sampler) == tuple(SAMPLERS)
    assert set(get_args(L0Mode)) == set(L0_MODES)
    assert set(get_args(PackDataset)) == set(DATASETS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs on a CUDA machine")
def test_an_impossible_precision_is_named_before_a_settings_conflict(tmp_path):
    from pathlib import Path

    example = sorted((Path(__file__).resolve().parents[2] / "examples" / "mask").glob("*.png"))[0]
    first = invoke("sample", "--base-only", "--cond", example, "--out", tmp_path, "--steps", "2", "--device", "cpu",
                   "--precision", "fp32")
    assert first.exit_code == 0, first.output
    # other settings into the same folder would be a conflict; fp16 on this CPU is the first problem
    again = invoke("sample", "--base-only", "--cond", example, "--out", tmp_path, "--steps", "2", "--device", "cpu",
                   "--precision", "fp16", "--guidance", "5")
    line = check_refused(again, "--precision fp16", code=1)
    assert "CUDA" in line and "guidance" not in again.output
