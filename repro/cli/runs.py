"""Verbs of one run: train, evaluate (re-score), bench, score (your own footage)."""

from __future__ import annotations

import json

import click

from .options import (
    DATA,
    DATASET,
    DEVICE,
    LAMBDA,
    MODEL,
    OUT,
    PRECISION,
    PROFILE,
    RUNS,
    SEED,
    SET,
    TASK,
    TRACK,
    apply,
    run_overrides,
    track,
)


@click.command(short_help="Train one run, evaluate its checkpoints, write metrics.")
@apply(PROFILE, MODEL, DATASET, DATA, TASK, SET, RUNS, DEVICE, PRECISION, LAMBDA, SEED, TRACK)
def train(profile, model, dataset, data_root, task, settings, runs_root, device, precision, lam, seed):
    """Train one model, evaluate every saved checkpoint and write its metrics into the run store.

    Example: repro train --task recon --set train.epochs=2

    Several GPUs for one run: torchrun --nproc_per_node 4 --no-python repro train ... (the batch is split
    over the processes; rank 0 writes the run and evaluates).
    """
    from ..pipeline import train_run

    seeded = (*settings, *([f"seed={seed}"] if seed is not None else []))
    overrides = run_overrides(seeded, model, dataset, data_root, task, device, precision, lam)
    result = train_run(profile, overrides, runs_root)
    if result.metrics is not None:  # rank 0 evaluates and reports
        click.echo(f"run: {result.folder}")
        click.echo(json.dumps(result.metrics, indent=2))
        track([result.folder])


@click.command(short_help="Re-score a finished run with other [eval] settings, beside it in its store.")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--no-test-time-update", "no_update", is_flag=True, help="Score with the trained items, no update.")
@apply(LAMBDA, SET)
def evaluate(run, no_update, lam, settings):
    """Re-evaluate a finished run's checkpoints with other evaluation settings (no retraining).

    The result is a run of its own (its config differs in [eval]), written beside RUN in RUN's run store; it
    reuses the checkpoints of RUN. Example: repro evaluate runs/3f2a9c1b0d4e --no-test-time-update
    """
    from pathlib import Path

    from ..pipeline import rescore

    overrides = (
        *(["eval.mnad.test_time_update=false"] if no_update else []),
        *([f"eval.mnad.lambda_score={lam}"] if lam is not None else []),
        *settings,
    )
    result = rescore(Path(run), overrides)
    click.echo(f"run: {result.folder} (written beside {run}, in the same run store)")
    click.echo(json.dumps(result.metrics, indent=2))


@click.command(short_help="Time training and evaluation of a method; prints JSON.")
@apply(MODEL, TASK)
@click.option(
    "--size",
    type=click.IntRange(min=8),
    default=64,
    show_default=True,
    help="Frame height and width in pixels (256 = paper); MNAD needs a multiple of 8, MemAE of 16.",
)
@click.option(
    "--width",
    type=click.IntRange(min=1),
    default=None,
    help="MNAD: channels of the first encoder block (64 = paper, the default; the query dim is 8x this).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Training and batched-evaluation batch size (4 = paper).",
)
@apply(PRECISION, DEVICE)
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="torch intra-op threads (default: all cores)."
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Minimum timed seconds per phase, after a warm-up.",
)
@click.option(
    "--compile/--no-compile",
    "compiled",
    default=False,
    show_default=True,
    help="torch.compile the encoder and decoder (the warm-up pays the compile time).",
)
@SET
def bench(model, task, size, width, batch, precision, device, threads, seconds, compiled, settings):
    """Print one JSON object with train_fps, eval_fps (the test-time update, frame by frame; null for a
    method without state memory) and eval_fps_no_update (batched), and ped2_epoch_seconds: a Ped2-size
    training epoch (2,550 frames) at train_fps.

    Random data, the paper profile's settings, the same step functions as training and evaluation. Example:
    repro bench --task pred --size 256 --width 64 --batch 4 --precision fp32 --device cpu
    """
    import torch

    from ..bench import benchmark

    if threads:
        torch.set_num_threads(threads)
    overrides = run_overrides((*([f"model.mnad.width={width}"] if width else []), *settings), model, task=task)
    click.echo(json.dumps(benchmark(overrides, size, batch, precision, device, seconds, compiled=compiled)))


@click.command(short_help="Score your own footage with a trained run: CSV, timeline, annotated MP4.")
@click.argument("run", type=click.Path(file_okay=False))
@click.argument("footage", type=click.Path())
@OUT
@click.option(
    "--stream",
    is_flag=True,
    help="Score each frame as soon as its window is decoded (batch 1) and report the latency per frame.",
)
@click.option(
    "--false-alarm-rate",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Share of normal frames flagged, which sets the threshold (default: the run's calibration, else 0.01).",
)
@click.option(
    "--normal",
    type=click.Path(exists=True),
    default=None,
    help="Normal footage of the same scene to calibrate on (default: the run's own normal frames: its training split, "
    "or the share held out of it, data.calibration_share); stored in the run.",
)
@click.option("--no-video", "no_video", is_flag=True, help="Leave out the annotated MP4 (faster).")
@click.option("--fps", type=click.FloatRange(min=1), default=25.0, show_default=True, help="The MP4's frame rate.")
@apply(DEVICE)
def score(run, footage, out, stream, false_alarm_rate, normal, no_video, fps, device):
    """Score every frame of FOOTAGE (a video file, a folder of videos or of frame folders; no labels) with the
    last checkpoint of the finished RUN, normalised by the run's calibration on normal frames (made once and
    stored in the run): per video a CSV (frame, score, flagged), an NPY, a timeline PNG and an annotated MP4.

    Example: repro score runs/3f2a9c1b0d4e street.mp4 --out scores/street
    """
    from pathlib import Path

    from ..footage import score_footage

    result = score_footage(
        Path(run),
        Path(footage),
        out,
        stream=stream,
        device=device,
        false_alarm_rate=false_alarm_rate,
        normal=normal,
        video=not no_video,
        fps=fps,
    )
    calibration = result.calibration
    click.echo(
        f"threshold {calibration.threshold:.4g} (false-alarm rate {calibration.false_alarm_rate:g} on "
        f"{calibration.frames} normal frames of {calibration.source})"
    )
    for name, flagged in result.flagged.items():
        click.echo(f"{name}: {int(flagged.sum())} of {len(flagged)} frames flagged; {result.paths[name]['csv']}")
    latency = f", latency per frame {result.latency_ms['median']:.1f} ms (p95 {result.latency_ms['p95']:.1f})"
    click.echo(f"{result.frames_per_second:.1f} frames per second{latency if stream else ''}; {result.summary}")
