"""Verbs of datasets: import, check, synth, bench."""

from __future__ import annotations

import click

from . import ReproError
from .options import JOBS, MODEL, SET, TASK, apply, run_overrides


@click.group(short_help="Import, check, synthesise and benchmark datasets.")
def data() -> None:
    """Import, check and generate datasets in the canonical layout (<root>/<name>/{training,testing}/frames)."""


@data.command("import")
@click.argument("form", type=click.Choice(["ucsd", "avenue", "shanghaitech", "videos"]))
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("dst", type=click.Path(file_okay=False))
@click.option(
    "--name",
    default=None,
    help="Dataset name: UCSD ped2 (default) or ped1; videos: required, e.g. campus (DST/campus).",
)
@click.option(
    "--labels",
    default=None,
    help="Avenue: 'published' (the literature's labels, shipped with repro), frame_labels_avenue.npy or "
    "Liu's avenue.mat (default: volLabel masks, not comparable with the literature). Videos: a flat "
    ".npy over the sorted test videos or a folder of <video>.npy masks.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace DST/<name> when it holds a dataset imported from other footage (refused otherwise); the old "
    "one stays whole until the new one is complete.",
)
@JOBS
def data_import(form, src, dst, name, labels, replace, jobs):
    """Convert an original distribution SRC into DST/<name> (resumable; SRC is only read). FORM videos: your
    own footage, SRC/training/*.mp4 and SRC/testing/*.mp4 (.avi, .mov, ...), decoded with OpenCV.

    Example: repro data import shanghaitech ~/Downloads/shanghaitech data/
    Example: repro data import videos footage/ data/ --name campus --labels footage/labels.npy
    """
    from ..data.importers import import_avenue, import_shanghaitech, import_ucsd, import_videos

    if form == "videos":
        if not name:
            raise ReproError("data import videos needs --name NAME, the dataset's folder under DST (e.g. campus)")
        dataset = import_videos(src, dst, name, labels=labels, workers=jobs, replace=replace)
    elif form == "ucsd":
        dataset = import_ucsd(src, dst, name=name or "ped2", workers=jobs, replace=replace)
    elif form == "avenue":
        dataset = import_avenue(src, dst, labels=labels, workers=jobs, replace=replace)
    else:
        dataset = import_shanghaitech(src, dst, workers=jobs, replace=replace)
    if form == "avenue" and labels is None:
        click.echo(
            "note: labels from the volLabel masks differ from the literature's; pass --labels published "
            "for comparable AUCs",
            err=True,
        )
    click.echo(f"imported: {dataset}\ncheck it with: repro data check {dst} {dataset.name}")


@data.command("check")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option(
    "--labels",
    default=None,
    help="A label file in any published form (.npy, UCSD .m, Liu .mat, test_frame_mask folder), or "
    "'published': the dataset's published labels, shipped with repro.",
)
@click.option(
    "--size",
    type=click.IntRange(min=8),
    default=256,
    show_default=True,
    help="Frame side of the frame cache whose disk space is checked (256 = paper).",
)
@click.option("--grayscale", is_flag=True, help="Check the space of a one-channel cache (MemAE, ConvLSTM-AE).")
@apply(MODEL, TASK, SET)
def data_check(root, name, labels, size, grayscale, model, task, settings):
    """Validate ROOT/NAME as `repro train` would with the same --model, --task and --set (layout, every frame,
    labels, clip windows of the model, the frame size for the model, a training batch against the clips) and
    print a summary: counts, the fingerprint that enters a run's identity, and the disk space a frame cache
    needs; exit code 2 with the reason if invalid.

    Example: repro data check data/ ped2 --labels published
    """
    import json
    import warnings

    from ..config import load_config
    from ..data.check import check_dataset
    from ..pipeline import check_trains

    cfg = load_config(None, run_overrides((f"data.size={size}", *settings), model=model, task=task))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = check_dataset(
            root, name, labels, size=size, grayscale=grayscale, layout=cfg.model.method.layout(cfg.model.settings)
        )
        check_trains(cfg, summary["training"]["clips"])
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    click.echo(json.dumps(summary, indent=2))
    cache = summary["frame_cache"]
    if not cache["fits"]:
        click.echo(
            f"note: a {size}x{size} frame cache needs {cache['needs_gb']:.2f} GB in {cache['folder']} but "
            f"{cache['free_gb']:.2f} GB are free (1 GB is kept free): runs will decode the frames on the "
            "fly with DataLoader workers (slower; repro data bench gives the decode rate per core). "
            "Fix: free space there, or set $REPRO_CACHE to a larger disk"
        )


@data.command("synth")
@click.argument("dst", type=click.Path(file_okay=False))
@click.option(
    "--preset",
    type=click.Choice(["single", "busy", "scenes", "tiny", "cameras"]),
    default="single",
    show_default=True,
    help="single: one plain scene (Ped2's role); busy: textured, more objects (Avenue's); "
    "scenes: several scenes pooled (ShanghaiTech's); cameras: 13 cameras at 128x128 (the memory study).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives identical files.")
@click.option(
    "--size",
    type=click.IntRange(min=16),
    default=None,
    help="Frame height and width [default: the preset's: 128 for cameras, 64 for the others].",
)
def data_synth(dst, preset, seed, size):
    """Write the moving-shapes dataset DST/synthetic-PRESET with labels, anomaly types and contact sheets.

    Example: repro data synth data/ --preset busy --seed 1
    """
    from ..data.synthetic import write_synthetic

    click.echo(f"written: {write_synthetic(dst, preset, seed, size)}")


@data.command("bench")
@click.option("--frames", type=click.IntRange(min=10), default=2000, show_default=True, help="Frames in the dataset.")
@click.option("--size", type=click.IntRange(min=8), default=64, show_default=True, help="Frame height and width.")
def data_bench(frames, size):
    """Print JSON: a first pass over a JPEG dataset (decode + cache) against a second pass (memory-mapped cache),
    and decode_fps_per_core: frames one core decodes per second, to size DataLoader workers (--set
    exec.num_workers=N) for a GPU when frames are decoded on the fly.

    Example: repro data bench --frames 2000 --size 64
    """
    import json

    from ..data.check import benchmark_cache

    click.echo(json.dumps(benchmark_cache(frames, size)))
