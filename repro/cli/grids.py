"""Verbs of a grid of runs: sweep (a table declaration), claims, ablate (a baseline and a variant). Each trains
what the run store lacks, writes its report and manifest.json, and names the runs that failed."""

from __future__ import annotations

import click

from . import fail_if_any
from .options import (
    ADDRESS,
    DATA,
    DATASET,
    DEVICE,
    EXECUTOR,
    JOBS,
    LAMBDA,
    MODEL,
    OUT,
    PRECISION,
    PROFILE,
    RUNS,
    SEEDS,
    SET,
    TASK,
    TRACK,
    LazyOptions,
    apply,
    run_overrides,
    track,
)

GRID = apply(PROFILE, DATA, SET, DEVICE, RUNS, JOBS, EXECUTOR, ADDRESS, TRACK)  # what every grid verb takes


def _show(written) -> None:
    from ..manifest import read_manifest
    from ..runs import is_finished

    click.echo(written.paths["md"].read_text())
    click.echo("written: " + ", ".join(str(p) for p in written.paths.values()))
    runs = read_manifest(written.paths["manifest"].parent).runs
    track([run.folder for run in runs if run.folder is not None and is_finished(run.folder)])
    fail_if_any(written.failures)


@click.command(short_help="Run every cell of a table declaration; write its table.")
@click.argument("table")
@GRID
@apply(SEEDS, OUT)
def sweep(table, profile, data_root, settings, device, runs_root, jobs, executor, address, seeds, out):
    """Run every cell of the table declaration TABLE (a shipped name such as table5, or a path to a TOML
    file) and write its report (md, csv, tex) and manifest.json, which `repro report OUT` reads.

    Killing a sweep and rerunning it finishes only the runs that are left. Each row of TABLE names its model.
    Example: repro sweep table5 --seeds 2
    """
    from ..verbs import sweep as sweep_table

    settings = run_overrides(settings, device=device)
    _show(sweep_table(table, profile, seeds, runs_root, out, data_root, settings, jobs, executor, address))


@click.command(short_help="Check the papers' and the study's claims over seeds; write a reproducibility report.")
@click.argument("claims_file", metavar="[CLAIMS.toml]", required=False, type=click.Path(exists=True, dir_okay=False))
@GRID
@OUT
@click.option(
    "--replicate",
    is_flag=True,
    help="Run the same seed plan on a disjoint seed set (the plan's seeds + 1000) and compare the verdicts.",
)
def claims(claims_file, profile, data_root, settings, device, runs_root, jobs, executor, address, out, replicate):
    """Run the seed plan of every claim of CLAIMS.toml in stages (its [plan]: the first look's seeds, then more
    only for the claims not yet stopped), give each claim its verdict before and after the family's adjustment
    (supported, contradicted, inconclusive, untested), the size outcome and why it stopped, and write the report
    (claims.md, claims.csv, index.html) and manifest.json into OUT (default reports/claims; with --replicate,
    reports/claims-replication, which adds replication.md). The seeds are the plan's: there is no --seeds.
    CLAIMS.toml defaults to the shipped ablations/claims.toml; a claim's arms name its model and win over --set
    on the keys they set; its keep_profile keys take the profile's value whatever --set says.

    Killing it and rerunning it finishes only the runs that are left.
    Example: repro claims ablations/claims.toml --set train.epochs=4 --set train.checkpoint_every=2
    """
    from ..verbs import check_claims

    settings = run_overrides(settings, device=device)
    out = out or ("reports/claims-replication" if replicate else "reports/claims")
    kept = (profile, runs_root, out, data_root, settings, jobs, executor, address)
    _show(check_claims(claims_file, *kept, replicate=replicate))


def _variant_options() -> list[click.Option]:
    """ablate's options for a variant, one per declared VariantFlag (the methods' and the common ones)."""
    from ..variants import variant_flags

    return [_variant_option(flag) for flag in variant_flags().values()]


def _variant_option(flag) -> click.Option:
    if flag.switch:
        return click.Option([f"--{flag.option}"], is_flag=True, default=False, help=flag.help)
    if isinstance(flag.kind, tuple):
        kind = click.Choice(flag.kind)
    elif flag.low is None and flag.high is None:
        kind = flag.kind
    else:
        bounds = dict(min=flag.low, max=flag.high, min_open=flag.low_open, max_open=flag.high_open)
        kind = click.IntRange(**bounds) if flag.kind is int else click.FloatRange(**bounds)
    bare = {} if flag.bare is None else dict(is_flag=False, flag_value=flag.bare)
    return click.Option([f"--{flag.option}"], type=kind, default=None, help=flag.help, **bare)


@click.command(
    cls=LazyOptions, more=_variant_options, short_help="Compare a variant with the baseline over shared seeds."
)
@apply(PROFILE, MODEL, DATASET, DATA, TASK, SET, RUNS, DEVICE, PRECISION, LAMBDA)
@click.option(
    "--no-memory",
    is_flag=True,
    help="Variant without memory: MNAD's 'w/o Mem.' network, or MemAE's memory-less AE (ae3d).",
)
@click.option("--variant-set", multiple=True, metavar="KEY=VALUE", help="Any other change for the variant only.")
@apply(SEEDS, OUT, JOBS, EXECUTOR, ADDRESS, TRACK)
def ablate(
    profile,
    model,
    dataset,
    data_root,
    task,
    settings,
    runs_root,
    device,
    precision,
    lam,
    no_memory,
    variant_set,
    seeds,
    out,
    jobs,
    executor,
    address,
    **changes,
):
    """Compare the profile's configuration (baseline) with a variant, same seeds, and print the difference;
    write comparison.md/csv/tex and manifest.json into OUT (default reports/ablate-<variant>).

    --no-memory, --variant-set and the options after --address change the variant only (each method declares
    its own); several make one combined variant. Example: repro ablate --no-separateness --seeds 3
    """
    from ..verbs import ablate as compare

    base = run_overrides(settings, model, dataset, data_root, task, device, precision, lam)
    chosen = {name.replace("_", "-"): value for name, value in changes.items()}
    kept = (profile, base, seeds, runs_root, out, jobs, executor, address)
    _show(compare(chosen, no_memory, tuple(variant_set), *kept))
