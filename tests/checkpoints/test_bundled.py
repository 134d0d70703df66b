"""The demo models that ship in weights/ match their manifest entries and load strictly."""

import pytest

from piti_cli.checkpoints.convert import load_model
from piti_cli.checkpoints.registry import BUNDLED_DIR, load_manifest, locate, sha256_file

BUNDLED = ("piti-demo-base", "piti-demo-upsample")


@pytest.mark.parametrize("entry_id", BUNDLED)
def test_bundled_file_matches_manifest_and_loads(entry_id):
    entry = load_manifest()[entry_id]
    assert entry.source == "bundled"
    path = locate(entry)
    assert path is not None and path.parent == BUNDLED_DIR
    assert path.stat().st_size == entry.size
    assert sha256_file(path) == entry.sha256
    model, config = load_model(path)  # strict: every tensor of the preset, nothing else
    assert config.name == entry.preset
    assert config.input_kind == "mask"


def test_bundled_files_are_small():
    total = sum(locate(load_manifest()[i]).stat().st_size for i in BUNDLED)
    assert total <= 25 * 2**20
