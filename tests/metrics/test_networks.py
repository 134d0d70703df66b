"""The FID Inception and CLIP ViT-B/32 definitions accept the official state-dict layouts."""

import numpy as np
import pytest
import torch

from piti_cli.errors import CheckpointError
from piti_cli.checkpoints.layout import key_mismatch
from piti_cli.metrics import networks
from piti_cli.metrics.clip import CLIPVisual
from piti_cli.metrics.inception import FIDInceptionV3

# pytorch-fid's pt_inception-2015-12-05-6726825d.pth: every conv is NAME.conv.weight
# (cout, cin, kh, kw) with NAME.bn.{weight,bias,running_mean,running_var} of size cout.
A = lambda cin, pool: {  # noqa: E731
    "branch1x1": (64, cin, 1, 1), "branch5x5_1": (48, cin, 1, 1), "branch5x5_2": (64, 48, 5, 5),
    "branch3x3dbl_1": (64, cin, 1, 1), "branch3x3dbl_2": (96, 64, 3, 3), "branch3x3dbl_3": (96, 96, 3, 3),
    "branch_pool": (pool, cin, 1, 1),
}
C = lambda c7: {  # noqa: E731
    "branch1x1": (192, 768, 1, 1), "branch7x7_1": (c7, 768, 1, 1), "branch7x7_2": (c7, c7, 1, 7),
    "branch7x7_3": (192, c7, 7, 1), "branch7x7dbl_1": (c7, 768, 1, 1), "branch7x7dbl_2": (c7, c7, 7, 1),
    "branch7x7dbl_3": (c7, c7, 1, 7), "branch7x7dbl_4": (c7, c7, 7, 1), "branch7x7dbl_5": (192, c7, 1, 7),
    "branch_pool": (192, 768, 1, 1),
}
E = lambda cin: {  # noqa: E731
    "branch1x1": (320, cin, 1, 1), "branch3x3_1": (384, cin, 1, 1), "branch3x3_2a": (384, 384, 1, 3),
    "branch3x3_2b": (384, 384, 3, 1), "branch3x3dbl_1": (448, cin, 1, 1), "branch3x3dbl_2": (384, 448, 3, 3),
    "branch3x3dbl_3a": (384, 384, 1, 3), "branch3x3dbl_3b": (384, 384, 3, 1), "branch_pool": (192, cin, 1, 1),
}
INCEPTION_CONVS = {
    "Conv2d_1a_3x3": (32, 3, 3, 3), "Conv2d_2a_3x3": (32, 32, 3, 3), "Conv2d_2b_3x3": (64, 32, 3, 3),
    "Conv2d_3b_1x1": (80, 64, 1, 1), "Conv2d_4a_3x3": (192, 80, 3, 3),
    **{f"Mixed_5b.{k}": v for k, v in A(192, 32).items()},
    **{f"Mixed_5c.{k}": v for k, v in A(256, 64).items()},
    **{f"Mixed_5d.{k}": v for k, v in A(288, 64).items()},
    "Mixed_6a.branch3x3": (384, 288, 3, 3), "Mixed_6a.branch3x3dbl_1": (64, 288, 1, 1),
    "Mixed_6a.branch3x3dbl_2": (96, 64, 3, 3), "Mixed_6a.branch3x3dbl_3": (96, 96, 3, 3),
    **{f"Mixed_6b.{k}": v for k, v in C(128).items()},
    **{f"Mixed_6c.{k}": v for k, v in C(160).items()},
    **{f"Mixed_6d.{k}": v for k, v in C(160).items()},
    **{f"Mixed_6e.{k}": v for k, v in C(192).items()},
    "Mixed_7a.branch3x3_1": (192, 768, 1, 1), "Mixed_7a.branch3x3_2": (320, 192, 3, 3),
    "Mixed_7a.branch7x7x3_1": (192, 768, 1, 1), "Mixed_7a.branch7x7x3_2": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_3": (192, 192, 7, 1), "Mixed_7a.branch7x7x3_4": (192, 192, 3, 3),
    **{f"Mixed_7b.{k}": v for k, v in E(1280).items()},
    **{f"Mixed_7c.{k}": v for k, v in E(2048).items()},
}


def official_inception_layout(with_counters: bool = True) -> dict:
    layout = {"fc.weight": (1008, 2048), "fc.bias": (1008,)}
    for name, shape in INCEPTION_CONVS.items():
        layout[f"{name}.conv.weight"] = shape
        for part in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{name}.bn.{part}"] = (shape[0],)
        if with_counters:
            layout[f"{name}.bn.num_batches_tracked"] = ()
    return layout


def official_clip_layout() -> dict:
    layout = {
        "visual.class_embedding": (768,), "visual.positional_embedding": (50, 768), "visual.proj": (768, 512),
        "visual.conv1.weight": (768, 3, 32, 32), "visual.ln_pre.weight": (768,), "visual.ln_pre.bias": (768,),
        "visual.ln_post.weight": (768,), "visual.ln_post.bias": (768,),
    }
    for i in range(12):
        p = f"visual.transformer.resblocks.{i}."
        layout.update({
            p + "attn.in_proj_weight": (2304, 768), p + "attn.in_proj_bias": (2304,),
            p + "attn.out_proj.weight": (768, 768), p + "attn.out_proj.bias": (768,),
            p + "ln_1.weight": (768,), p + "ln_1.bias": (768,), p + "ln_2.weight": (768,), p + "ln_2.bias": (768,),
            p + "mlp.c_fc.weight": (3072, 768), p + "mlp.c_fc.bias": (3072,),
            p + "mlp.c_proj.weight": (768, 3072), p + "mlp.c_proj.bias": (768,),
        })
    return layout


def random_state(layout: dict, dtype=torch.float32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(0)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = (torch.randn(shape, generator=g) * 0.02).to(dtype)
    return out


def test_inception_names_and_shapes_match_official_layout():
    ours = {k: tuple(v.shape) for k, v in FIDInceptionV3().state_dict().items()}
    assert ours == official_inception_layout()
    assert sum(np.prod(s) for k, s in ours.items() if "num_batches" not in k) == 23_885_392


def test_inception_layout_matches_torchvision_port():
    # pytorch-fid's state dict is torchvision's inception_v3(num_classes=1008, aux_logits=False).
    import torchvision

    tv = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    assert {k: tuple(v.shape) for k, v in tv.state_dict().items()} == official_inception_layout()


@pytest.mark.parametrize("counters", [True, False])
def test_inception_random_official_weights_load_strictly(tmp_path, counters):
    state = random_state(official_inception_layout(with_counters=counters))
    path = tmp_path / "inception.pth"
    torch.save(state, path)
    model = networks.load_inception(path)
    assert torch.equal(model.state_dict()["Mixed_7c.branch_pool.conv.weight"], state["Mixed_7c.branch_pool.conv.weight"])
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 299, 299) * 255)
    assert feats.shape == (1, 2048) and torch.isfinite(feats).all()


def test_inception_wrong_layout_is_one_line_error(tmp_path):
    state = random_state(official_inception_layout())
    del state["Mixed_6b.branch1x1.conv.weight"]
    state["Mixed_6b.branch1x1.conv.weight"] = torch.zeros(192, 768, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad\.pth.*Mixed_6b\.branch1x1\.conv\.weight has shape") as err:
        networks.load_inception(tmp_path / "bad.pth")
    assert "\n" not in str(err.value)


def test_clip_names_and_shapes_match_openai_layout():
    model = CLIPVisual()
    ours = {f"visual.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_clip_layout()
    assert sum(np.prod(s) for s in ours.values()) == 87_849_216


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_clip_full_openai_state_dict_loads(tmp_path, fmt):
    # A whole CLIP state dict in fp16 (as OpenAI ships it): text keys are ignored.
    state = random_state(official_clip_layout(), dtype=torch.float16)
    state["token_embedding.weight"] = torch.zeros(10, 4, dtype=torch.float16)
    state["logit_scale"] = torch.tensor(4.6)
    path = tmp_path / f"clip.{fmt}"
    if fmt == "pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = networks.load_clip_visual(path)
    assert torch.equal(model.proj.detach(), state["visual.proj"].float())
    with torch.no_grad():
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 512)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_clip_torchscript_archive_is_read(tmp_path):
    class Whole(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = CLIPVisual(width=64, layers=1, heads=2)

        def forward(self, x):
            return self.visual(x)

    small = Whole().eval()
    path = tmp_path / "ViT-small.pt"
    torch.jit.save(torch.jit.trace(small, torch.randn(1, 3, 224, 224), check_trace=False), str(path))
    assert networks.is_torchscript(path)
    # A smaller tower is refused with a one-line layout error naming the file.
    with pytest.raises(CheckpointError, match="ViT-small.pt: not a CLIP ViT-B/32 image tower"):
        networks.load_clip_visual(path)


def test_plain_torch_save_is_not_torchscript(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "x.pt")
    assert not networks.is_torchscript(tmp_path / "x.pt")


def test_the_registered_inception_file_is_checked_against_its_published_sum(tmp_path, monkeypatch):
    """pytorch-fid's file has a published sha256 (6726825d0af5…, 95,628,359 bytes): a file under
    its name with other bytes is refused, whatever its name promises."""
    monkeypatch.setenv("PITI_WEIGHTS_DIR", str(tmp_path))
    torch.save({"x": torch.zeros(1)}, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    with pytest.raises(CheckpointError, match=r"does not match fid-inception \(6726825d0af5…\)"):
        networks.find_weights(networks.INCEPTION_ID)


def test_named_hash_prefix_is_checked(tmp_path):
    """Another copy under a torch-hub name (`…-<sha256 prefix>.pth`) is held to its prefix."""
    path = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="does not start with 6726825d"):
        networks.find_weights(networks.INCEPTION_ID, explicit=str(path))


@pytest.mark.slow
def test_fid_cli_with_real_inception_architecture(tmp_path, monkeypatch):
    """`piti eval fid` through the built-in Inception path, random weights of the official layout."""
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from piti_cli.cli.main import app

    monkeypatch.setenv("PITI_CACHE_DIR", str(tmp_path / "cache"))
    weights = tmp_path / "inception_random.pth"
    torch.save(random_state(official_inception_layout()), weights)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    res = CliRunner().invoke(app, ["eval", "fid", str(tmp_path / "a"), "--ref", str(tmp_path / "b"),
                                   "--inception-weights", str(weights), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)["metrics"]["inception"]
    assert m["feature_net"] == "inception-2015-12-05" and m["dim"] == 2048 and m["n_gen"] == 3
    assert m["weights_sha256"] == __import__("hashlib").sha256(weights.read_bytes()).hexdigest()
    assert m["preprocessing"].startswith("clean")


def test_key_mismatch_names_missing_unexpected_and_misshaped_keys():
    ref = {"x": torch.zeros(2), "y": torch.zeros(3)}
    assert key_mismatch(dict(ref), ref) == ""
    assert key_mismatch({"x": torch.zeros(2)}, ref, prefix="visual.") == "1 missing (e.g. visual.y)"
    assert key_mismatch({**ref, "z": torch.zeros(1)}, ref) == "1 unexpected (e.g. z)"
    assert key_mismatch({"x": torch.zeros(2), "y": torch.zeros(4)}, ref) == "y has shape (4,), expected (3,)"
