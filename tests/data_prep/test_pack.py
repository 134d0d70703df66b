import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from piti_cli.data.images import resize_bicubic
from piti_cli.data_prep.pack import pack_split
from piti_cli.data.palettes import coco_stuff_palette
from piti_cli.data.reader import PackedDataset, PackedInfo
from piti_cli.errors import InputError


class Interrupt(Exception):
    pass


def _contents(path):
    with h5py.File(path, "r") as f:
        arrays = {}
        f.visititems(lambda n, o: arrays.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        return arrays, {k: v for k, v in f.attrs.items()}


def test_coco_pack_round_trip_with_workers(coco_root, tmp_path):
    out = tmp_path / "coco_train.h5"
    rep = pack_split("coco-stuff", coco_root, out, split="train")
    assert rep.written == 4
    reasons = dict(rep.skipped)
    assert set(reasons) == {"000000000050", "000000000099"}
    assert "no condition" in reasons["000000000050"] and "unreadable" in reasons["000000000099"]

    info = PackedInfo(out)
    assert info.kind == "mask" and info.count == 4 and info.config["split"] == "train"
    assert len(info.class_names) == 182 and info.class_names[0] == "person"
    np.testing.assert_array_equal(info.palette, coco_stuff_palette())
    with h5py.File(out, "r") as f:
        assert f["images"].chunks == (1, 256, 256, 3) and f.attrs["format"] == "piti-pack"
        assert "squash" in f.attrs["resize_policy"]
        np.testing.assert_array_equal(f["original_sizes"][0], [96, 120])

    ds = PackedDataset(out)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    images = torch.cat([b["image"] for b in batches])
    masks = torch.cat([b["condition"] for b in batches])
    assert images.shape == (4, 256, 256, 3) and images.dtype == torch.uint8
    assert masks.shape == (4, 256, 256) and masks.dtype == torch.uint8
    ids = [s for b in batches for s in b["source_id"]]
    assert ids == ["000000000000", "000000000001", "000000000002", "000000000003"]
    # independent check: the jpg decoded and resized here equals the stored image
    src = np.asarray(Image.open(coco_root / "images/train2017/000000000002.jpg").convert("RGB"))
    np.testing.assert_array_equal(images[2].numpy(), resize_bicubic(src, 256))
    lab = np.asarray(Image.open(coco_root / "annotations/train2017/000000000002.png"))
    assert set(np.unique(masks[2].numpy())) <= set(np.unique(lab))
    cond = ds.condition_tensor(masks[2].numpy())
    assert cond.shape == (3, 256, 256) and cond.dtype == torch.float32
    expect = coco_stuff_palette()[masks[2].numpy()].transpose(2, 0, 1) / 127.5 - 1
    np.testing.assert_allclose(cond.numpy(), expect, atol=1e-6)

    tens = PackedDataset(out, as_tensors=True)[1]
    assert tens["image"].shape == (3, 256, 256) and tens["image"].min() >= -1


def test_interrupted_pack_resumes_to_same_contents(coco_root, tmp_path):
    full = tmp_path / "full.h5"
    pack_split("coco-stuff", coco_root, full, split="train", commit_every=2)
    part = tmp_path / "part.h5"
    calls = []

    def stop_after_first_commit(done, total):
        calls.append(done)
        if done >= 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        pack_split("coco-stuff", coco_root, part, split="train", commit_every=2, progress=stop_after_first_commit)
    assert not part.exists() and part.with_name("part.h5.partial").exists()
    with pytest.raises(InputError, match="incomplete"):
        PackedInfo(part.with_name("part.h5.partial"))
    rep = pack_split("coco-stuff", coco_root, part, split="train", commit_every=2)
    assert rep.resumed_from == 2 and not part.with_name("part.h5.partial").exists()
    a, attrs_a = _contents(full)
    b, attrs_b = _contents(part)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert attrs_a == attrs_b


def test_strict_fails_and_existing_is_kept(coco_root, tmp_path):
    with pytest.raises(InputError, match="unmatched"):
        pack_split("coco-stuff", coco_root, tmp_path / "s.h5", split="train", strict=True)
    out = tmp_path / "v.h5"
    assert pack_split("coco-stuff", coco_root, out, split="val").written == 1
    assert pack_split("coco-stuff", coco_root, out, split="val").already_complete
    with pytest.raises(InputError, match="no folder for split"):
        pack_split("coco-stuff", coco_root, tmp_path / "x.h5", split="test")


def test_ade20k_layout(tmp_path, make_photo):
    photo = make_photo
    base = tmp_path / "ADEChallengeData2016"
    for sub in ("images/validation", "annotations/validation"):
        (base / sub).mkdir(parents=True)
    lab = np.zeros((64, 80), np.uint8)
    lab[:, 40:] = 150
    Image.fromarray(photo(0, (80, 64))).save(base / "images/validation/ADE_val_00000001.jpg")
    Image.fromarray(lab, mode="L").save(base / "annotations/validation/ADE_val_00000001.png")
    out = tmp_path / "ade_val.h5"
    assert pack_split("ade20k", tmp_path, out, split="val").written == 1
    ds = PackedDataset(out)
    assert ds.info.class_names[150] == "flag" and set(np.unique(ds[0]["condition"])) == {0, 150}
    bad = lab.copy()
    bad[0, 0] = 200
    Image.fromarray(bad, mode="L").save(base / "annotations/validation/ADE_val_00000001.png")
    with pytest.raises(InputError, match="outside ade20k"):
        pack_split("ade20k", tmp_path, tmp_path / "b.h5", split="validation", strict=True)


def test_diode_pack_condition(diode_root, tmp_path):
    out = tmp_path / "diode_val.h5"
    rep = pack_split("diode", diode_root, out, split="val")
    assert rep.written == 2 and len(rep.skipped) == 1
    ds = PackedDataset(out)
    item = ds[0]
    assert set(item["condition"]) == {"depth", "depth_valid", "normal"}
    assert item["condition"]["depth"].dtype == np.float32 and item["condition"]["normal"].shape == (256, 256, 3)
    c = ds.condition_tensor(item["condition"])
    assert c.shape == (6, 256, 256)
    assert (c[:, :, :18] == -1).all()  # invalid columns black in both pictures


def test_generic_sketch_pack_with_real_sketches(tmp_path, reference_dir, make_photo):
    photo = make_photo
    imgs, sks = tmp_path / "imgs", tmp_path / "sk"
    imgs.mkdir()
    sks.mkdir()
    files = sorted((reference_dir / "piti_test_inputs" / "sketch").glob("*.png"))
    for i, f in enumerate(files):
        Image.fromarray(photo(i)).save(imgs / f"{f.stem}.jpg")
        (sks / f.name).write_bytes(f.read_bytes())
    (sks / "orphan.png").write_bytes(files[0].read_bytes())
    out = tmp_path / "gen.h5"
    rep = pack_split("generic", imgs, out, split="all", conditions_dir=sks, condition="sketch")
    assert rep.written == 4 and rep.skipped == [("orphan", "no image file")]
    ds = PackedDataset(out)
    for i, f in enumerate(files):
        ref = np.asarray(Image.open(f).convert("L")) >= 128
        np.testing.assert_array_equal(ds[i]["condition"], ref.astype(np.uint8))
        c = ds.condition_tensor(ds[i]["condition"])
        assert c.shape == (1, 256, 256) and (c[0][torch.from_numpy(ref)] == -1).all()
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["config"])["condition"] == "sketch"


def test_generic_colour_masks_decode_to_ids(tmp_path, reference_dir, make_photo):
    imgs, masks = tmp_path / "imgs", tmp_path / "masks"
    imgs.mkdir()
    masks.mkdir()
    files = sorted((reference_dir / "piti_test_inputs" / "mask").glob("*.png"))
    for i, f in enumerate(files):
        Image.fromarray(make_photo(i)).save(imgs / f"{f.stem}.png")
        (masks / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "m.h5"
    assert pack_split("generic", imgs, out, conditions_dir=masks, condition="mask").written == 4
    ds = PackedDataset(out)
    for i, f in enumerate(files):
        rgb = np.asarray(Image.open(f).convert("RGB"))
        shown = coco_stuff_palette()[ds[i]["condition"]]
        known = shown.any(axis=2)  # unlabeled (black or the 183 alias) shows black
        np.testing.assert_array_equal(shown[known], rgb[known])
