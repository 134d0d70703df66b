import math

import numpy as np
import torch
from PIL import Image

from piti_cli.data.reader import PackedDataset
from piti_cli.train.data import StepBatches, TrainingStream, flip_condition, subset_indices


def pil_target(picture: np.ndarray, size: int) -> torch.Tensor:
    """The official 64-px target, written with PIL alone: uint8 BICUBIC, then x / 127.5 - 1."""
    small = np.asarray(Image.fromarray(picture).resize((size, size), Image.BICUBIC))
    return torch.from_numpy(small.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1


def pil_nearest(cond: torch.Tensor, size: int) -> torch.Tensor:
    """Each channel through PIL NEAREST as a float ('F') picture."""
    return torch.stack([torch.from_numpy(np.array(Image.fromarray(c.numpy(), "F").resize((size, size), Image.NEAREST)))
                        for c in cond])


def stream(pack, **kw):
    args = dict(image_size=64, condition_size=64, condition_channels=3, seed=1)
    args.update(kw)
    return TrainingStream(str(pack), **args)


def test_depth_flip_mirrors_maps_and_negates_normal_x():
    rng = np.random.default_rng(0)
    stored = {"depth": rng.random((4, 5), dtype=np.float32), "depth_valid": (rng.random((4, 5)) > 0.5).astype(np.uint8),
              "normal": rng.normal(size=(4, 5, 3)).astype(np.float32)}
    out = flip_condition("depth", stored)
    assert np.array_equal(out["depth"], stored["depth"][:, ::-1])
    assert np.array_equal(out["depth_valid"], stored["depth_valid"][:, ::-1])
    assert np.array_equal(out["normal"][..., 0], -stored["normal"][:, ::-1, 0])
    assert np.array_equal(out["normal"][..., 1:], stored["normal"][:, ::-1, 1:])
    assert np.array_equal(flip_condition("mask", np.arange(6).reshape(2, 3)), [[2, 1, 0], [5, 4, 3]])


def test_items_match_the_pack_flipped_or_not_and_are_deterministic(scenes_pack):
    s = stream(scenes_pack)
    raw = PackedDataset(scenes_pack)
    flips = set()
    for k in range(12):
        item = s[k]
        assert item["image"].shape == (3, 64, 64) and item["condition"].shape == (3, 64, 64)
        r = raw[s.item_index(k)]
        plain = pil_target(r["image"], 64)
        mirrored = pil_target(np.ascontiguousarray(r["image"][:, ::-1]), 64)
        full = raw.condition_tensor(r["condition"])
        cond = pil_nearest(full, 64)
        cond_flipped = pil_nearest(full.flip(-1).contiguous(), 64)
        if torch.equal(item["image"], plain):
            flips.add(False)
            assert torch.equal(item["condition"], cond)
        else:
            assert torch.equal(item["image"], mirrored)
            assert torch.equal(item["condition"], cond_flipped)
            flips.add(True)
        again = s[k]
        assert torch.equal(again["image"], item["image"]) and torch.equal(again["noise"], item["noise"])
    assert flips == {True, False}


def test_each_epoch_visits_every_item_once(scenes_pack):
    s = stream(scenes_pack)
    assert sorted(s.item_index(k) for k in range(12)) == list(range(12))
    assert sorted(s.item_index(k) for k in range(12, 24)) == list(range(12))
    assert [s.item_index(k) for k in range(12)] != [s.item_index(k) for k in range(12, 24)]


def test_condition_dropout_gives_the_null_condition(scenes_pack):
    always = stream(scenes_pack, uncond_p=1.0)
    assert torch.equal(always[3]["condition"], torch.ones(3, 64, 64))
    never = stream(scenes_pack, uncond_p=0.0)
    assert not torch.equal(never[3]["condition"], torch.ones(3, 64, 64))
    half = stream(scenes_pack, uncond_p=0.5)
    dropped = sum(bool((half[k]["condition"] == 1).all()) for k in range(100))
    assert 30 < dropped < 70


def test_data_fraction_keeps_a_seeded_subset():
    idx = subset_indices(100, 0.25, seed=0)
    assert len(idx) == 25 and len(set(idx.tolist())) == 25 and idx.max() < 100
    assert np.array_equal(idx, subset_indices(100, 0.25, seed=0))
    assert len(subset_indices(10, 0.01, seed=0)) == 1 == math.ceil(0.01 * 10)


def test_process_slices_concatenate_to_the_single_process_batch():
    one = list(StepBatches(3, 5, 8))
    r0, r1 = list(StepBatches(3, 5, 8, 0, 2)), list(StepBatches(3, 5, 8, 1, 2))
    assert one == [a + b for a, b in zip(r0, r1)]
    assert one[0] == list(range(24, 32))


def test_upsampler_items_carry_a_degraded_low_res(scenes_pack):
    s = stream(scenes_pack, image_size=256, low_res=True)
    item = s[0]
    assert item["image"].shape == (3, 256, 256) and item["low_res"].shape == (3, 64, 64)
    assert torch.equal(s[0]["low_res"], item["low_res"])


def test_upsampler_crops_are_aligned_windows_of_the_whole_picture(scenes_pack):
    whole = stream(scenes_pack, image_size=256, low_res=True, flip=False)
    cropped = stream(scenes_pack, image_size=256, low_res=True, flip=False, crop_size=128)
    assert PackedDataset(scenes_pack)[0]["image"].shape[:2] == (256, 256)  # the stored-pixels path
    for k in range(5, 8):
        item = cropped[k]
        assert item["image"].shape == item["noise"].shape == (3, 128, 128)
        assert item["low_res"].shape == (3, 32, 32)
        full = whole[k]["image"]
        # the window sits at a multiple of the scale factor 4, so it matches one 32×32 low-res window
        hits = [(y, x) for y in range(0, 129, 4) for x in range(0, 129, 4)
                if torch.equal(full[:, y:y + 128, x:x + 128], item["image"])]
        assert hits, "the crop is no aligned window of the picture"
        assert torch.equal(cropped[k]["low_res"], item["low_res"])  # deterministic per k


def test_crops_of_pictures_stored_at_another_size_are_windows_of_the_resized_picture(tmp_path):
    from piti_cli.data.scenes import make_scenes, write_pack

    images, masks = make_scenes(2, seed=4)
    pack = write_pack(tmp_path / "small.h5", np.ascontiguousarray(images[:, ::2, ::2]),
                      np.ascontiguousarray(masks[:, ::2, ::2]))  # stored at 128, trained at 256
    whole = stream(pack, image_size=256, low_res=True, flip=False)[0]["image"]
    item = stream(pack, image_size=256, low_res=True, flip=False, crop_size=64)[0]
    assert item["image"].shape == (3, 64, 64) and item["low_res"].shape == (3, 16, 16)
    assert any(torch.equal(whole[:, y:y + 64, x:x + 64], item["image"])
               for y in range(0, 193, 4) for x in range(0, 193, 4))
