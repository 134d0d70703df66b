"""`piti eval`: FID-I / FID-C (+ KID) against a reference, reference statistics, LPIPS diversity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from piti_cli.cli.options import Command, CommandGroup, DEVICE_HELP, Features, LpipsNet, check_device, flag, number

eval_app = typer.Typer(
    cls=CommandGroup,
    name="eval",
    help="Evaluate samples: FID on Inception / CLIP features, KID, LPIPS diversity.",
    no_args_is_help=True,
)

EXIT_THRESHOLD = 3  # --max-fid exceeded (1 is a user error, 2 a usage error)

_FEATURES = typer.Option("inception", "--features", help="Feature network: inception (FID-I), clip (FID-C) or both.")
_NUM = typer.Option(None, "--num", min=2, help="Use the first N images of each set (sorted order).")
_BATCH = typer.Option(32, "--batch-size", min=1, help="Images per forward pass.")
_DEVICE = typer.Option("auto", "--device", callback=check_device, help=DEVICE_HELP)
_WORKERS = typer.Option(2, "--workers", min=1, help="Threads decoding and resizing images.")
_INC_W = typer.Option(None, "--inception-weights", help="FID Inception weights: a file or registry id (default: fid-inception).")
_CLIP_W = typer.Option(None, "--clip-weights", help="CLIP ViT-B/32 weights: a file or registry id (default: clip-vit-b32).")
_WDIR = typer.Option(None, "--weights-dir", metavar="DIR", help="Folder where weights are looked up first (then $PITI_WEIGHTS_DIR, the user cache ~/.cache/piti/weights).")


def _kinds(features: str) -> list[str]:
    from piti_cli.errors import InputError

    choices = {"inception": ["inception"], "clip": ["clip"], "both": ["inception", "clip"]}
    if features not in choices:
        raise InputError(f"--features {features}: choose inception, clip or both")
    return choices[features]


def _extractors(features, device, inception_weights, clip_weights, weights_dir):
    from piti_cli.metrics.features import build_extractor
    from piti_cli.runtime import resolve_device

    dev = resolve_device(device)
    paths = {"inception": inception_weights, "clip": clip_weights}
    return dev, [build_extractor(k, dev, paths[k], weights_dir) for k in _kinds(features)]


def fid(
    gen: Path = typer.Argument(..., metavar="GEN", exists=True, help="Generated images: a folder or an HDF5 pack."),
    ref: Path = typer.Option(..., "--ref", exists=True, help="Reference: a folder, an HDF5 pack, or a .npz from `piti eval stats`."),
    features: Features = _FEATURES,
    num: Optional[int] = _NUM,
    batch_size: int = _BATCH,
    device: str = _DEVICE,
    workers: int = _WORKERS,
    kid: bool = flag(False, "--kid", help="Also compute KID (needs reference images or stats with features)."),
    kid_subsets: int = typer.Option(100, "--kid-subsets", min=1, help="KID: number of random subsets."),
    kid_subset_size: int = typer.Option(1000, "--kid-subset-size", min=2, help="KID: samples per subset."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the KID subsets."),
    max_fid: Optional[float] = typer.Option(None, "--max-fid", callback=number(0.0), help="Exit with code 3 when FID-I (or the only FID) exceeds this."),
    max_fid_clip: Optional[float] = typer.Option(None, "--max-fid-clip", callback=number(0.0), help="Exit with code 3 when FID-C exceeds this."),
    as_json: bool = flag(False, "--json", help="Print the result as JSON on stdout."),
    no_cache: bool = flag(False, "--no-cache", help="Do not read or write cached reference statistics."),
    inception_weights: Optional[str] = _INC_W,
    clip_weights: Optional[str] = _CLIP_W,
    weights_dir: Optional[str] = _WDIR,
) -> None:
    """FID of GEN against REF on Inception (FID-I) and/or CLIP (FID-C) features."""
    from piti_cli.cli.ui import console, print_error, print_warning, progress_bar
    from piti_cli.metrics.fid import evaluate_fid, open_sets

    kinds = _kinds(features)
    open_sets(gen, ref, num)  # what the user typed is checked before weights are looked for
    dev, extractors = _extractors(features, device, inception_weights, clip_weights, weights_dir)
    with progress_bar("features") as update:
        result = evaluate_fid(
            gen, ref, extractors, num=num, batch_size=batch_size, workers=workers, kid=kid,
            kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed,
            use_cache=not no_cache, progress=update,
        )
    result["device"] = str(dev)
    for message in result["warnings"]:
        print_warning(message)

    limits = {}
    if max_fid is not None:
        limits[kinds[0] if kinds == ["clip"] else "inception"] = max_fid
    if max_fid_clip is not None:
        limits["clip"] = max_fid_clip
    failures = []
    for kind, limit in limits.items():
        if kind in result["metrics"] and result["metrics"][kind]["fid"] > limit:
            label = "FID-I" if kind == "inception" else "FID-C"
            failures.append(f"{label} {result['metrics'][kind]['fid']:.4f} exceeds {limit:g}")
    result["thresholds"] = {"limits": limits, "passed": not failures}

    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"{gen} vs {ref}")
        for col in ("metric", "value", "N gen", "N ref", "network", "weights sha256"):
            table.add_column(col)
        for kind, m in result["metrics"].items():
            label = "FID-I" if kind == "inception" else "FID-C"
            table.add_row(label, f"{m['fid']:.4f}", str(m["n_gen"]), str(m["n_ref"]), m["feature_net"], m["weights_sha256"][:12])
            if "kid" in m:
                table.add_row(f"KID ({kind})", f"{m['kid']:.6f} ± {m['kid_std']:.6f}", str(m["n_gen"]), str(m["n_ref"]), m["feature_net"], "")
        console.print(table)
    if failures:
        for f in failures:
            print_error(f)
        raise typer.Exit(EXIT_THRESHOLD)


def stats(
    source: Path = typer.Argument(..., metavar="SOURCE", exists=True, help="Reference images: a folder or an HDF5 pack."),
    out: Path = typer.Option(..., "--out", help="Statistics file to write (.npz)."),
    features: Features = _FEATURES,
    num: Optional[int] = _NUM,
    batch_size: int = _BATCH,
    device: str = _DEVICE,
    workers: int = _WORKERS,
    keep_features: bool = flag(False, "--keep-features", help="Store the features too, so KID works against this file."),
    inception_weights: Optional[str] = _INC_W,
    clip_weights: Optional[str] = _CLIP_W,
    weights_dir: Optional[str] = _WDIR,
) -> None:
    """Compute reference feature statistics once, for `piti eval fid --ref OUT.npz`."""
    from piti_cli.cli.ui import console, progress_bar
    from piti_cli.errors import InputError
    from piti_cli.metrics.fid import compute_stats
    from piti_cli.metrics.stats import save_stats

    if out.suffix.lower() != ".npz":
        raise InputError(f"{out}: statistics files end in .npz")
    _, extractors = _extractors(features, device, inception_weights, clip_weights, weights_dir)
    with progress_bar("features") as update:
        result = compute_stats(source, extractors, num, batch_size, workers, keep_features, update)
    save_stats(out, result, str(source))
    for kind, st in result.items():
        console.print(f"{kind}: N={st.n}, dim={st.mu.shape[0]} -> {out}")


def lpips_cmd(
    folder: Path = typer.Argument(..., metavar="FOLDER", exists=True, help="Samples: one sub-folder per condition, or files COND_k.png."),
    net: LpipsNet = typer.Option("alex", "--net", help="LPIPS backbone: alex or vgg."),
    backbone_weights: Optional[Path] = typer.Option(None, "--backbone-weights", help="torchvision alexnet/vgg16 state dict (.pth)."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", min=1, help="At most this many pairs per condition."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Pairs per forward pass."),
    device: str = _DEVICE,
    as_json: bool = flag(False, "--json", help="Print the result as JSON on stdout."),
    random_backbone: bool = flag(False, "--random-backbone", hidden=True, help="Tests only: random backbone."),
) -> None:
    """Diversity: mean pairwise LPIPS between samples of the same condition (higher = more diverse)."""
    from piti_cli.cli.ui import console, progress_bar
    from piti_cli.metrics.diversity import build_lpips, group_samples, lpips_diversity
    from piti_cli.runtime import resolve_device

    dev = resolve_device(device)
    groups = group_samples(folder)
    model = build_lpips(net, str(backbone_weights) if backbone_weights else None, random_backbone, dev)
    with progress_bar("lpips pairs") as update:
        result = lpips_diversity(groups, model, dev, max_pairs, batch_size, update)
    result.update(net=net, backbone="random" if random_backbone else str(backbone_weights), device=str(dev))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(f"LPIPS diversity ({net}): {result['lpips_diversity']:.4f} over {result['groups']} conditions, {result['pairs']} pairs")


eval_app.command("fid", cls=Command)(fid)
eval_app.command("stats", cls=Command)(stats)
eval_app.command("lpips", cls=Command)(lpips_cmd)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
