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
