"""Text-to-image pretraining (`--stage pretrain`) and the GLIDE → PITI step after it.

Checked against independent computations: captions against a per-cell count written here,
the stream's tokens against the pack's stored ids, the clean low-res against PIL itself,
the converted model's decoder against the pretrained GLIDE's own tensors.
"""

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from piti_cli.checkpoints.convert import load_model
from piti_cli.checkpoints.io import read_checkpoint
from piti_cli.data.reader import PackedDataset, PackedInfo
from piti_cli.data.scenes import CAPTION_GRID, caption, make_scenes, write_pack
from piti_cli.errors import InputError
from piti_cli.models.config import get_preset, piti_from_glide
from piti_cli.train.data import TrainingStream
from piti_cli.train.loop import train
from piti_cli.train.state import export_ema
from tests.train.conftest import base_config


@pytest.fixture(scope="module")
def caption_pack(tmp_path_factory):
    images, masks = make_scenes(6, seed=9)
    caps = np.full((6, 20), -1, dtype=np.int32)
    for i, m in enumerate(masks):
        ids = caption(m)
        caps[i, :len(ids) - i % 3] = ids[:len(ids) - i % 3]  # captions of different lengths
    return write_pack(tmp_path_factory.mktemp("captions") / "captions.h5", images, masks, captions=caps), masks


def test_caption_names_the_most_common_class_of_each_cell():
    _, masks = make_scenes(3, seed=4)
    for m in masks:
        cell = m.shape[0] // CAPTION_GRID
        expected = []
        for r in range(CAPTION_GRID):
            for c in range(CAPTION_GRID):
                block = m[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell]
                expected.append(int(np.bincount(block.ravel(), minlength=4).argmax()) + 1)
        assert caption(m).tolist() == expected


def test_stream_tokens_are_the_stored_caption_and_dropout_empties_it(caption_pack):
    pack, _ = caption_pack
    with h5py.File(pack) as f:
        stored = f["captions"][()]
    stream = TrainingStream(str(pack), image_size=64, condition_size=0, condition_channels=0, caption_length=16,
                            flip=False)
    for k in range(6):
        item = stream[k]
        ids = stored[stream.item_index(k)]
        ids = ids[ids >= 0][:16]
        assert item["token_mask"].sum() == len(ids)
        assert item["tokens"][:len(ids)].tolist() == ids.tolist()
        assert "condition" not in item
    dropped = TrainingStream(str(pack), image_size=64, condition_size=0, condition_channels=0, caption_length=16,
                             uncond_p=1.0)
    assert not dropped[0]["token_mask"].any()


def test_a_pack_without_captions_is_refused_for_pretraining(scenes_pack):
    with pytest.raises(InputError, match="no /captions"):
        TrainingStream(str(scenes_pack), image_size=64, condition_size=0, condition_channels=0, caption_length=16)


def test_malformed_captions_are_one_error_naming_the_file(tmp_path):
    images, masks = make_scenes(2, seed=1)
    path = write_pack(tmp_path / "bad.h5", images, masks, captions=np.zeros((2, 4), dtype=np.int32))
    with h5py.File(path, "a") as f:
        del f["captions"]
        f["captions"] = np.zeros((2, 4), dtype=np.float32)
    with pytest.raises(InputError, match="bad.h5.*captions"):
        PackedInfo(path)


def test_clean_low_res_is_pil_bicubic_of_the_picture(scenes_pack):
    stream = TrainingStream(str(scenes_pack), image_size=256, condition_size=64, condition_channels=3,
                            low_res=True, degradation="bicubic", flip=False)
    item = stream[0]
    picture = PackedDataset(scenes_pack)[stream.item_index(0)]["image"]
    expected = np.asarray(Image.fromarray(picture).resize((64, 64), Image.BICUBIC))
    got = np.rint((item["low_res"].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)
    assert np.array_equal(got, expected)


def test_pretraining_trains_the_text_side_and_converts_into_piti(caption_pack, glide_base, tmp_path):
    pack, _ = caption_pack
    cfg = base_config(pack, glide_base, tmp_path / "pre", stage="pretrain", input_kind=None, flip=False)
    train(cfg)
    before = read_checkpoint(glide_base).state_dict
    file, config, step = export_ema(tmp_path / "pre", tmp_path / "pre.safetensors", raw=True)
    after = read_checkpoint(file).state_dict
    assert config.family == "glide" and step == 2
    for name in ("token_embedding.weight", "transformer.resblocks.0.attn.c_qkv.weight", "input_blocks.0.0.weight"):
        assert not torch.equal(before[name], after[name]), name
    # GLIDE → PITI from the pretrained file: decoder tensors are the pretrained ones, the new
    # encoder takes its condition at --condition-size (16² tokens at 256)
    model, piti = load_model(file, input_kind="mask", condition_size=256)
    assert piti.family == "piti" and piti.encoder.input_size == 256 and piti.encoder.num_tokens == 256
    state = model.state_dict()
    decoder = [k for k in after if not k.startswith(("token_embedding", "transformer.", "final_ln", "positional_",
                                                     "padding_"))]
    assert decoder and all(torch.equal(state[f"decoder.{k}"], after[k]) for k in decoder)
    # stage 1 from the pretraining run folder: the decoder stays as pretrained
    s1 = base_config(pack, tmp_path / "pre", tmp_path / "s1", stage="encoder", preset=None, condition_size=128)
    train(s1)
    trained, cfg1, _ = export_ema(tmp_path / "s1", tmp_path / "s1.safetensors", raw=True)
    s1_state = read_checkpoint(trained).state_dict
    assert cfg1.encoder.input_size == 128
    ema = read_checkpoint(export_ema(tmp_path / "pre", tmp_path / "pre_ema.safetensors")[0]).state_dict
    assert all(torch.equal(s1_state[f"decoder.{k}"], ema[k]) for k in decoder)


def test_pretraining_a_piti_model_is_refused(glide_base, caption_pack, tmp_path):
    pack, _ = caption_pack
    train(base_config(pack, glide_base, tmp_path / "piti"))
    with pytest.raises(InputError, match="pretrain trains a GLIDE model"):
        train(base_config(pack, tmp_path / "piti", tmp_path / "again", stage="pretrain", preset=None))


def test_condition_size_sets_the_new_encoders_input():
    glide = get_preset("glide-base-tiny")
    assert piti_from_glide(glide, "mask").encoder.input_size == 64
    assert piti_from_glide(glide, "mask", condition_size=256).encoder.num_tokens == 256
    with pytest.raises(InputError, match="condition-size"):
        base_config("x.h5", "y.pt", "z", condition_size=100)
