"""The full presets produce exactly the tensor names and shapes of the 8 official files."""

import json

import pytest
import torch

from piti_cli.models.config import PRESETS, ModelConfig
from piti_cli.models.piti import build_model

OFFICIAL = {
    "glide_base": "glide-base-64",
    "glide_upsample": "glide-upsample-256",
    "piti_base_coco": "piti-base-mask",
    "piti_upsample_coco": "piti-upsample-mask",
    "piti_base_coco-edge": "piti-base-sketch",
    "piti_upsample_coco-edge": "piti-upsample-sketch",
    "piti_base_depth-normal": "piti-base-depth-normal",
    "piti_upsample_depth-normal": "piti-upsample-depth-normal",
}


@pytest.mark.parametrize("layout_file,preset", sorted(OFFICIAL.items()))
def test_official_layout_matches_exactly(reference_dir, layout_file, preset):
    expected = json.loads((reference_dir / "checkpoint_layouts" / f"{layout_file}.json").read_text())
    with torch.device("meta"):
        model = build_model(PRESETS[preset])
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == expected


def test_reference_parameter_counts(reference_dir):
    # Independent numbers from the reference README's table.
    counts = {"glide-base-64": 385_030_726, "glide-upsample-256": 398_361_286,
              "piti-base-mask": 338_015_302, "piti-base-sketch": 338_012_166,
              "piti-base-depth-normal": 338_020_006}
    for preset, n in counts.items():
        with torch.device("meta"):
            model = build_model(PRESETS[preset])
        assert sum(p.numel() for p in model.parameters()) == n, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_a_plain_dict(name):
    config = PRESETS[name]
    plain = json.loads(json.dumps(config.to_dict()))  # only JSON types survive
    assert ModelConfig.from_dict(plain) == config
