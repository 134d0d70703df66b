"""The evaluation networks (FID Inception, CLIP ViT-B/32): find, verify and load their weights.

Lookup for each network: an explicit path or registry id (`--inception-weights`,
`--clip-weights`) > the registry entry's file in the weights folder (`--weights-dir` >
`$PITI_WEIGHTS_DIR` > `./weights`) > an accepted alternative file name in that folder.
A file whose expected sha256 is known (from the manifest, or the 8-hex prefix torch-hub
style in the file name) is checked; every loaded file's sha256 is recorded in results.

Formats: plain state dicts (`.pt`/`.pth` via `torch.load(weights_only=True)`, or
`.safetensors`), and TorchScript archives (clean-fid's `inception-2015-12-05.pt`, OpenAI's
`ViT-B-32.pt`), read with `torch.jit.load` — TorchScript, not pickle, so no Python code runs.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from piti_cli.checkpoints import registry
from piti_cli.checkpoints.io import torch_load
from piti_cli.checkpoints.layout import key_mismatch
from piti_cli.errors import CheckpointError, OfflineError, brief
from piti_cli.metrics.clip import CLIPVisual, load_visual_state_dict
from piti_cli.metrics.inception import FIDInceptionV3, TorchScriptInception

INCEPTION_ID = "fid-inception"
CLIP_ID = "clip-vit-b32"
# Other file names accepted in the weights folder when the registry file is absent.
ALTERNATIVES = {
    INCEPTION_ID: ("inception-2015-12-05.pt",),  # clean-fid / StyleGAN2-ADA TorchScript
    CLIP_ID: ("clip-vit-b32-visual.safetensors", "clip-vit-b32-visual.pt"),  # converted state dicts
}
OPTION = {INCEPTION_ID: "--inception-weights", CLIP_ID: "--clip-weights"}
_HUB_PREFIX = re.compile(r"-([0-9a-f]{8,})\.(?:pth?|safetensors)$")


@dataclass(frozen=True)
class WeightFile:
    path: Path
    sha256: str


def find_weights(entry_id: str, explicit: str | None = None, weights_dir: str | None = None) -> WeightFile:
    """Locate and verify the weight file of `entry_id` ("fid-inception" or "clip-vit-b32")."""
    entry = registry.get_entry(entry_id)
    if explicit:
        path = registry.resolve(explicit, weights_dir)
    else:
        path = registry.locate(entry, weights_dir)
        if path is None:
            folder = registry.weights_dir(weights_dir)
            path = next((folder / n for n in ALTERNATIVES.get(entry_id, ()) if (folder / n).is_file()), None)
        if path is None:
            folder = registry.weights_dir(weights_dir)
            raise OfflineError(
                f"{entry_id}: {entry.filename} not found in {folder}; run `piti weights fetch {entry_id}` "
                f"(or download {entry.url} there), or pass {OPTION.get(entry_id, '--weights')} PATH"
            )
    digest = registry.sha256_file(Path(path))
    expected = entry.sha256 if Path(path).name == entry.filename else None
    if expected and digest != expected:
        raise CheckpointError(
            f"{path}: sha256 {digest[:12]}… does not match {entry_id} ({expected[:12]}…); "
            "the file is corrupt or a different network"
        )
    hub = _HUB_PREFIX.search(Path(path).name)
    if hub and not digest.startswith(hub.group(1)):
        raise CheckpointError(
            f"{path}: sha256 {digest[:12]}… does not start with {hub.group(1)} as its name says; the file is corrupt"
        )
    return WeightFile(Path(path), digest)


def is_torchscript(path: Path) -> bool:
    """TorchScript archives are zips with a `code/` folder; torch.save zips have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n or n.startswith("code/") for n in zf.namelist())


def load_state_dict(path: Path) -> dict:
    """A plain state dict from .safetensors or a torch.save file (weights_only)."""
    if path.suffix != ".safetensors":
        state = torch_load(path)
    else:
        try:
            state = load_file(str(path))
        except Exception as err:  # safetensors' header and size errors
            raise CheckpointError(f"{path}: cannot read as a state dict ({brief(str(err))})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def load_torchscript(path: Path):
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as err:
        raise CheckpointError(f"{path}: cannot load TorchScript archive ({brief(str(err))})") from None


def load_inception(path: Path):
    """FID Inception from the pytorch-fid state dict, or clean-fid's TorchScript file."""
    if is_torchscript(path):
        scripted = load_torchscript(path)
        if not hasattr(scripted, "layers"):
            raise CheckpointError(f"{path}: TorchScript archive is not clean-fid's inception-2015-12-05.pt (no `layers`)")
        return TorchScriptInception(scripted).eval()
    state = load_state_dict(path)
    model = FIDInceptionV3()
    expected = model.state_dict()
    # Optional entries: BN step counters, and an aux classifier the FID network does not use.
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = expected[key]
    _check_layout(path, "FID Inception-v3", state, expected)
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_clip_visual(path: Path):
    """CLIP ViT-B/32 image tower from OpenAI's TorchScript archive or a plain state dict."""
    state = load_torchscript(path).state_dict() if is_torchscript(path) else load_state_dict(path)
    model = CLIPVisual()
    try:
        load_visual_state_dict(model, state)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    return model.eval()


def _check_layout(path: Path, what: str, state: dict, expected: dict) -> None:
    mismatch = key_mismatch(state, expected)
    if mismatch:
        raise CheckpointError(f"{path}: not a {what} state dict: {mismatch}")

