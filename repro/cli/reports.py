"""Verbs that read finished runs: report (tables, figures, index), probe (the skip probe) and export (to an
experiment tracker)."""

from __future__ import annotations

import click

from .options import DATA, OUT, PROFILE, RUNS, SEEDS, SET, TRACKERS, apply


@click.command(short_help="Write a report folder (tables, figures, index) from finished runs.")
@click.argument("source")
@apply(OUT, RUNS, PROFILE, DATA, SEEDS, SET)
def report(source, out, runs_root, profile, data_root, seeds, settings):
    """Report SOURCE: a folder written by sweep, claims or ablate (its manifest.json names the runs: no other
    option is needed), a run store folder (every finished run), or a table declaration (a shipped name such as
    table6 or a path; its runs found by config hash from --profile, --data, --seeds and --set as given to the
    sweep). Reads only the run store, never trains; a run with missing files is named and skipped in part.

    Example: repro report reports/table6
    """
    from ..verbs import report as write_report

    written = write_report(source, out, runs_root, profile, data_root, seeds, tuple(settings))
    click.echo(f"written: {written.paths['md']} and {written.paths['html']}")


@click.command(short_help="Skip probe: how much the output changes with the bottleneck replaced.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@OUT
@click.option("--clips", type=click.IntRange(min=1), default=32, show_default=True, help="Test clips per run.")
def probe(runs, out, clips):
    """Probe RUNS (run folders, or run store folders: every finished run in them): the last checkpoint's
    bottleneck, then bottleneck and skips 2, 3, replaced by zeros, ones or noise; writes probe.md/csv/tex into
    OUT (default reports/skip-probe). Example: repro probe runs/skip-probe
    """
    from ..verbs import probe as probe_runs

    written = probe_runs(list(runs), out or "reports/skip-probe", clips)
    click.echo(written.paths["md"].read_text())


@click.command(short_help="Log finished runs to MLflow or TensorBoard, one tracker run per run.")
@click.argument("tracker", type=click.Choice(TRACKERS))
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--to",
    "target",
    default=None,
    help="mlflow: a tracking URI or folder (default: $MLFLOW_TRACKING_URI, else ./mlruns); tensorboard: a log "
    "folder (default: ./tensorboard).",
)
def export(tracker, runs, target):
    """Log RUNS (run folders, or run store folders: every finished run in them) to TRACKER: the resolved config
    as parameters, losses, memory diagnostics and test scores per epoch as curves, the metrics, the run's files
    and its loss/AUC figure as artefacts; tagged with the run's hash, seed and group (its config without the
    seed). A run already there is left as it is. Example: repro export mlflow runs/
    """
    from pathlib import Path

    from ..runs import finished_runs
    from ..trackers import export_runs

    folders = finished_runs([Path(run) for run in runs])
    click.echo(f"exported {len(folders)} run(s) to {tracker}: {export_runs(tracker, folders, target)}")
