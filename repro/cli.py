"""The `repro` command line: parse, validate, call one library function. Only this module imports click."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="repro")
def main() -> None:
    """Reproduce, ablate and extend memory-augmented autoencoders for video anomaly detection."""


@main.command()
@click.option("--task", type=click.Choice(["pred", "recon"]), default="pred", show_default=True,
              help="Prediction (4 frames -> 5th) or reconstruction (1 frame -> itself).")
@click.option("--size", type=click.IntRange(min=8), default=64, show_default=True,
              help="Frame height and width in pixels (256 = paper). Must be divisible by 8.")
@click.option("--width", type=click.IntRange(min=1), default=64, show_default=True,
              help="Channel width of the first encoder block (64 = paper; the query dim is 8x this).")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True,
              help="Training and batched-evaluation batch size (4 = paper).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="Autocast precision of the convolutions; the memory maths stays fp32.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch intra-op threads (default: all cores).")
@click.option("--seconds", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Minimum timed seconds per phase, after a warm-up.")
@click.option("--channels-last/--no-channels-last", default=False, show_default=True,
              help="Use the channels-last memory format for the convolutions.")
def bench(task, size, width, batch, precision, device, threads, seconds, channels_last):
    """Print one JSON object with MNAD's train_fps, eval_fps (test-time update) and eval_fps_no_update.

    Random data, the same step functions as training and evaluation. Example:
    repro bench --task pred --size 256 --width 64 --batch 4 --precision fp32
    """
    import json

    import torch

    from .bench import benchmark

    if size % 8:
        raise click.BadParameter(f"{size} is not divisible by 8 (the encoder pools three times)", param_hint="--size")
    if threads:
        torch.set_num_threads(threads)
    result = benchmark(task, size, width, batch, precision, device, seconds, channels_last)
    click.echo(json.dumps(result))


# ------------------------------------------------------------------------------------------------ data
class DataCommandError(click.ClickException):
    """A dataset problem, shown as one line with exit code 2."""

    exit_code = 2


def _data_errors(function):
    """Turn the data layer's validation errors into one-line CLI errors with exit code 2."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from .data.layout import DataError

        try:
            return function(*args, **kwargs)
        except DataError as error:
            raise DataCommandError(str(error)) from None

    return wrapper


@main.group()
def data() -> None:
    """Import, check and generate datasets in the canonical layout (<root>/<name>/{training,testing}/frames)."""


@data.command("import")
@click.argument("form", type=click.Choice(["ucsd", "avenue", "shanghaitech"]))
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("dst", type=click.Path(file_okay=False))
@click.option("--name", default="ped2", show_default=True, help="Dataset name for a UCSD import (ped2 or ped1).")
@click.option("--labels", type=click.Path(exists=True), default=None,
              help="Avenue: the published frame_labels_avenue.npy or Liu's avenue.mat (default: volLabel masks, "
                   "not comparable with the literature).")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Videos converted in parallel.")
@_data_errors
def data_import(form, src, dst, name, labels, jobs):
    """Convert an original distribution SRC into DST/<name> (resumable; SRC is only read).

    Example: repro data import shanghaitech ~/Downloads/shanghaitech data/
    """
    from .data.extract import import_avenue, import_shanghaitech, import_ucsd

    if form == "ucsd":
        dataset = import_ucsd(src, dst, name=name, workers=jobs)
    elif form == "avenue":
        dataset = import_avenue(src, dst, labels=labels, workers=jobs)
    else:
        dataset = import_shanghaitech(src, dst, workers=jobs)
    if form == "avenue" and labels is None:
        click.echo("note: labels from the volLabel masks differ from the literature's; pass --labels "
                   "frame_labels_avenue.npy for comparable AUCs", err=True)
    click.echo(f"imported: {dataset}\ncheck it with: repro data check {dst} {dataset.name}")


@data.command("check")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option("--labels", type=click.Path(exists=True), default=None,
              help="A label file in any published form (.npy, UCSD .m, Liu .mat, test_frame_mask folder).")
@_data_errors
def data_check(root, name, labels):
    """Validate ROOT/NAME (layout, every frame, labels) and print a summary; exit code 2 with the reason if not.

    Example: repro data check data/ ped2 --labels frame_labels_ped2.npy
    """
    import json
    import warnings

    from .data.check import check_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = check_dataset(root, name, labels)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    click.echo(json.dumps(summary, indent=2))


@data.command("synth")
@click.argument("dst", type=click.Path(file_okay=False))
@click.option("--preset", type=click.Choice(["single", "busy", "scenes"]), default="single", show_default=True,
              help="single: one plain scene (Ped2's role); busy: textured, more objects (Avenue's); "
                   "scenes: several scenes pooled (ShanghaiTech's).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives identical files.")
@click.option("--size", type=click.IntRange(min=16), default=64, show_default=True, help="Frame height and width.")
@_data_errors
def data_synth(dst, preset, seed, size):
    """Write the moving-shapes dataset DST/synthetic-PRESET with labels, anomaly types and contact sheets.

    Example: repro data synth data/ --preset busy --seed 1
    """
    from .data.synthetic import write_synthetic

    click.echo(f"written: {write_synthetic(dst, preset, seed, size)}")


@data.command("bench")
@click.option("--frames", type=click.IntRange(min=10), default=2000, show_default=True, help="Frames in the dataset.")
@click.option("--size", type=click.IntRange(min=8), default=64, show_default=True, help="Frame height and width.")
def data_bench(frames, size):
    """Print JSON: a first pass over a JPEG dataset (decode + cache) against a second pass (memory-mapped cache).

    Example: repro data bench --frames 2000 --size 64
    """
    import json

    from .data.check import benchmark_cache

    click.echo(json.dumps(benchmark_cache(frames, size)))
