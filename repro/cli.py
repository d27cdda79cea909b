"""The `repro` command line: parse, validate, call one library function. Only this module imports click."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="repro")
def main() -> None:
    """Reproduce, ablate and extend memory-augmented autoencoders for video anomaly detection."""


@main.command(short_help="Time MNAD training and evaluation; prints JSON.")
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
@click.option("--compile/--no-compile", "compiled", default=False, show_default=True,
              help="torch.compile the encoder and decoder (the warm-up pays the compile time).")
def bench(task, size, width, batch, precision, device, threads, seconds, compiled):
    """Print one JSON object with MNAD's train_fps, eval_fps (test-time update) and eval_fps_no_update,
    and ped2_epoch_seconds: a Ped2-size training epoch (2,550 frames) at train_fps.

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
    result = benchmark(task, size, width, batch, precision, device, seconds, compiled=compiled)
    click.echo(json.dumps(result))


# ------------------------------------------------------------------------------------ runs and sweeps
class ReproError(click.ClickException):
    """A problem with the user's input, shown as one line with exit code 2 (no traceback)."""

    exit_code = 2


def _friendly(function):
    """Turn the library's validation errors into one-line CLI errors."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from .config import ConfigError
        from .data.layout import DataError
        from .runs import RunError

        try:
            return function(*args, **kwargs)
        except (ConfigError, DataError, RunError, ValueError, FileNotFoundError) as error:
            raise ReproError(str(error)) from None

    return wrapper


def _run_options(function):
    """Options shared by every verb that resolves a run config."""
    options = [
        click.option("--profile", default="synthetic", show_default=True,
                     help="A profile in ablations/profiles/ (synthetic | paper) or a path to a TOML file."),
        click.option("--dataset", type=click.Choice(["synthetic", "ped2", "avenue", "shanghaitech"]), default=None,
                     help="Dataset (default: the profile's; synthetic needs no download)."),
        click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False), default=None,
                     help="Folder holding <dataset>/training/frames and <dataset>/testing/frames."),
        click.option("--task", type=click.Choice(["pred", "recon"]), default=None,
                     help="pred: 4 frames -> the 5th; recon: a frame -> itself (default: the profile's)."),
        click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                     help="Any config field, e.g. --set train.epochs=2 --set model.width=8 (repeatable)."),
        click.option("--runs", "runs_root", type=click.Path(file_okay=False), default="runs", show_default=True,
                     help="The run store: one folder per config hash; finished runs are never recomputed."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
                     help="Where to run (default: the profile's)."),
        click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
                     help="Autocast precision of the convolutions; memory maths stays fp32."),
    ]  # fmt: skip
    for option in reversed(options):
        function = option(function)
    return function


def _base_overrides(dataset, data_root, task, settings, device, precision, lam=None) -> tuple[str, ...]:
    overrides = []
    if dataset:
        overrides.append(f"data.name={dataset}")
    if data_root:
        overrides.append(f"data.root={data_root}")
    if task:
        overrides.append(f"model.task={task}")
    if device:
        overrides.append(f"exec.device={device}")
    if precision:
        overrides.append(f"exec.precision={precision}")
    if lam is not None:
        overrides.append(f"eval.lambda_score={lam}")
    return (*overrides, *settings)


def _lambda_option(function):
    return click.option("--lambda", "lam", type=click.FloatRange(0, 1), default=None,
                        help="λ, the PSNR weight of the anomaly score (eq. 16; 0.6 pred / 0.7 recon).")(function)


@main.command(short_help="Train one run, evaluate its checkpoints, write metrics.")
@_run_options
@_lambda_option
@click.option("--seed", type=int, default=None, help="Random seed (default: the profile's).")
@_friendly
def train(profile, dataset, data_root, task, settings, runs_root, device, precision, lam, seed):
    """Train one model, evaluate every saved checkpoint and write its metrics into the run store.

    Example: repro train --task recon --set train.epochs=2

    Several GPUs for one run: torchrun --nproc_per_node 4 --no-python repro train ... (the batch is split
    over the processes; rank 0 writes the run and evaluates).
    """
    import json
    from pathlib import Path

    from .config import load_config
    from .distributed import ranks_from_environment
    from .pipeline import execute_run
    from .runs import RunStore

    overrides = _base_overrides(dataset, data_root, task, settings, device, precision, lam)
    cfg = load_config(profile, (*overrides, *([f"seed={seed}"] if seed is not None else [])))
    store = RunStore(Path(runs_root))
    run = execute_run(cfg, store)
    if not ranks_from_environment().main:
        return  # rank 0 evaluates and reports
    click.echo(f"run: {run}")
    click.echo(json.dumps(store.read_metrics(run)["default"], indent=2))


@main.command(short_help="Re-score a finished run with other [eval] settings.")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--no-test-time-update", "no_update", is_flag=True, help="Score with the trained items, no update.")
@_lambda_option
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Evaluation fields, e.g. eval.gamma=0.02.")
@_friendly
def evaluate(run, no_update, lam, settings):
    """Re-evaluate a finished run's checkpoints with other evaluation settings (no retraining).

    The result is a run of its own (its config differs in [eval]) that reuses the checkpoints of RUN.
    Example: repro evaluate runs/3f2a9c1b0d4e --no-test-time-update
    """
    import json
    from pathlib import Path

    from .config import load_config
    from .pipeline import execute_run
    from .runs import RunStore

    source = Path(run)
    overrides = (*(["eval.test_time_update=false"] if no_update else []),
                 *([f"eval.lambda_score={lam}"] if lam is not None else []), *settings)  # fmt: skip
    for override in overrides:
        if not override.startswith(("eval.", "exec.")):
            raise ReproError(f"evaluate changes only eval.* and exec.* fields, not {override.split('=')[0]!r}")
    cfg = load_config(source / "config.toml", overrides)
    result = execute_run(cfg, RunStore(source.parent))
    click.echo(f"run: {result}")
    click.echo(json.dumps(RunStore(source.parent).read_metrics(result)["default"], indent=2))


@main.command(short_help="Run every cell of a table declaration; write its table.")
@click.argument("table", type=click.Path(exists=True, dir_okay=False))
@click.option("--profile", default="synthetic", show_default=True,
              help="synthetic (the stand-in presets, minutes on a CPU) or paper (real data, a GPU).")
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder holding the real datasets (ped2/, avenue/, shanghaitech/); default: synthetic stand-ins.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds per cell.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override any field for every run.")
@click.option("--runs", "runs_root", type=click.Path(file_okay=False), default="runs", show_default=True,
              help="The run store (finished runs are reused).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder (default: reports/<table name>).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Runs in parallel (default: one per core on a CPU, each with one thread).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine's cores; ray: one Ray task per run (pip install 'repro[ray]').")
@click.option("--address", default=None, help="Ray cluster address (default: start a local Ray instance).")
@_friendly
def sweep(table, profile, data_root, seeds, settings, runs_root, out, jobs, executor, address):
    """Run every cell of a table declaration and write its report (md, csv, tex).

    Killing a sweep and rerunning it finishes only the runs that are left.
    Example: repro sweep ablations/table5.toml --seeds 2
    """
    from pathlib import Path

    from .ablation import load_table, run_grid, table_grid
    from .report.build import table_report
    from .runs import RunStore

    declaration = load_table(table)
    runs = table_grid(declaration, profile, seeds, data_root, tuple(settings))
    store = RunStore(Path(runs_root))
    failures = run_grid(runs, store, jobs, executor=executor, address=address)
    paths = table_report(declaration, runs, store, Path(out or f"reports/{declaration.name}"))
    click.echo(paths["md"].read_text())
    click.echo("written: " + ", ".join(str(p) for p in paths.values()))
    _fail_if_any(failures)


def _fail_if_any(failures: dict[str, str]) -> None:
    if failures:
        lines = "\n".join(f"  runs/{name}: {error}" for name, error in failures.items())
        raise click.ClickException(f"{len(failures)} run(s) failed (their status.json says why):\n{lines}")


ABLATION_FLAGS = {
    "no_separateness": "loss.separateness=0",
    "no_compactness": "loss.compactness=0",
    "no_test_time_update": "eval.test_time_update=false",
    "no_memory": "model.memory=false",
}


@main.command(short_help="Compare a variant with the baseline over shared seeds.")
@_run_options
@_lambda_option
@click.option("--no-separateness", is_flag=True, help="Variant without the separateness loss (λ_s = 0, eq. 12).")
@click.option("--no-compactness", is_flag=True, help="Variant without the compactness loss (λ_c = 0, eq. 10).")
@click.option("--no-test-time-update", is_flag=True, help="Variant that never updates the items at test time (γ gate off).")
@click.option("--no-memory", is_flag=True, help="Variant without memory: the study's 'w/o Mem.' network.")
@click.option("--skip/--no-skip", "skip", default=None, help="Variant with or without the U-Net skip connections.")
@click.option("--salt-pepper", type=click.FloatRange(0, 1, max_open=True), default=None, metavar="P",
              help="Variant trained on inputs with a fraction P of pixels set to 0 or 1 (e.g. 0.25).")
@click.option("--uniform-memory", type=float, default=None, is_flag=False, flag_value=1.0, metavar="[WEIGHT]",
              help="Variant with the study's uniform-memory supervision (weight 1 when given alone).")
@click.option("--model", type=click.Choice(["mnad", "memae", "ae3d", "convlstm"]), default=None,
              help="Network of baseline and variant (default: the profile's, MNAD).")
@click.option("--shrink-threshold", type=click.FloatRange(min=0), default=None, metavar="K",
              help="MemAE variant with hard-shrinkage threshold K/N (N = the memory size; 0 = off; official 5).")
@click.option("--addressing", type=click.Choice(["dot", "cosine"]), default=None, help="MemAE variant's addressing.")
@click.option("--entropy", type=click.FloatRange(min=0), default=None, metavar="W",
              help="MemAE variant's entropy-loss weight (official 0.0002).")
@click.option("--memory-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="MemAE variant's number of memory items (official 2000).")
@click.option("--variant-set", multiple=True, metavar="KEY=VALUE", help="Any other change for the variant only.")
@click.option("--seeds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Seeds; baseline and variant share them.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder (default: reports/ablate-<variant>).")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Runs in parallel (default: one per core).")
@_friendly
def ablate(profile, dataset, data_root, task, settings, runs_root, device, precision, lam, no_separateness,
           no_compactness, no_test_time_update, no_memory, skip, salt_pepper, uniform_memory, model,
           shrink_threshold, addressing, entropy, memory_size, variant_set, seeds, out, jobs):  # fmt: skip
    """Compare the profile's configuration (baseline) with a variant, same seeds, and print the difference.

    Every flag changes the variant only; several flags make one combined variant.
    Example: repro ablate --no-separateness --seeds 2
    """
    from pathlib import Path

    from .ablation import run_grid, variant_grid
    from .report.build import ablation_report
    from .runs import RunStore

    flags = dict(no_separateness=no_separateness, no_compactness=no_compactness,
                 no_test_time_update=no_test_time_update, no_memory=no_memory)  # fmt: skip
    changes = [ABLATION_FLAGS[name] for name, on in flags.items() if on]
    names = [name.replace("_", "-") for name, on in flags.items() if on]
    if skip is not None:
        changes.append(f"model.skips={str(skip).lower()}")
        names.append("skip" if skip else "no-skip")
    if salt_pepper is not None:
        changes.append(f"data.salt_pepper={salt_pepper}")
        names.append(f"salt-pepper-{salt_pepper:g}")
    if uniform_memory is not None:
        changes.append(f"loss.uniform_memory={uniform_memory}")
        names.append(f"uniform-memory-{uniform_memory:g}")
    model_override = (f"model.name={model}",) if model else ()
    base = (*model_override, *_base_overrides(dataset, data_root, task, settings, device, precision, lam))
    memae_changes, memae_names = _memae_variant(profile, base, shrink_threshold, addressing, entropy, memory_size)
    changes += memae_changes + list(variant_set)
    names += memae_names + [s.replace("=", "-") for s in variant_set]
    if not changes:
        raise ReproError("name at least one change for the variant, e.g. --no-separateness (see repro ablate --help)")
    variant = "+".join(names)
    runs = variant_grid(profile, base, {variant: tuple(changes)}, seeds)
    store = RunStore(Path(runs_root))
    failures = run_grid(runs, store, jobs)
    paths = ablation_report(runs, store, Path(out or f"reports/ablate-{variant}"))
    click.echo(paths["md"].read_text())
    click.echo("written: " + ", ".join(str(p) for p in paths.values()))
    _fail_if_any(failures)


def _memae_variant(profile, base: tuple[str, ...], shrink_multiple: float | None, addressing: str | None,
                   entropy: float | None, memory_size: int | None) -> tuple[list[str], list[str]]:
    """The MemAE flags as (overrides, name parts); the shrink threshold is K/N of the variant's memory size."""
    from .config import load_config

    changes, names = [], []
    if memory_size is not None:
        changes.append(f"model.memae_items={memory_size}")
        names.append(f"memory-size-{memory_size}")
    if shrink_multiple is not None:
        items = memory_size or load_config(profile, base).model.memae_items
        changes.append(f"model.shrink_threshold={shrink_multiple / items!r}")
        names.append(f"shrink-{shrink_multiple:g}-over-n")
    if addressing is not None:
        changes.append(f"model.addressing={addressing}")
        names.append(f"addressing-{addressing}")
    if entropy is not None:
        changes.append(f"loss.entropy={entropy!r}")
        names.append(f"entropy-{entropy:g}")
    return changes, names


# ------------------------------------------------------------------------------------------------ data
@main.group(short_help="Import, check, synthesise and benchmark datasets.")
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
@_friendly
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
@_friendly
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
@click.option("--preset", type=click.Choice(["single", "busy", "scenes", "tiny", "cameras"]), default="single",
              show_default=True,
              help="single: one plain scene (Ped2's role); busy: textured, more objects (Avenue's); "
                   "scenes: several scenes pooled (ShanghaiTech's); cameras: 13 cameras at 128x128 (the memory study).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives identical files.")
@click.option("--size", type=click.IntRange(min=16), default=None,
              help="Frame height and width [default: the preset's: 128 for cameras, 64 for the others].")
@_friendly
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


# ------------------------------------------------------------------------------------------- reports
@main.command(short_help="Write a report folder (tables, figures, index) from finished runs.")
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Report folder, e.g. reports/table6.")
@click.option("--runs", "runs_root", type=click.Path(file_okay=False), default="runs", show_default=True,
              help="Run store a table declaration's runs are looked up in.")
@click.option("--profile", default="synthetic", show_default=True, help="As given to `repro sweep` (same hashes).")
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False), default=None,
              help="As given to `repro sweep`.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="As given to `repro sweep`.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="As given to `repro sweep`.")
@_friendly
def report(source, out, runs_root, profile, data_root, seeds, settings):
    """Report SOURCE, a run store folder (every finished run) or a table declaration (its runs, found by
    config hash). Reads only the run store, never trains; a run with missing files is named and skipped
    in part. Example: repro report ablations/table6.toml --out reports/table6
    """
    from pathlib import Path

    from .report.index import report_source

    index = report_source(Path(source), Path(out), Path(runs_root), profile, data_root, seeds, tuple(settings))
    click.echo(f"written: {index} and {index.with_suffix('.html')}")


@main.command(short_help="Skip probe: how much the output changes with the bottleneck replaced.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="reports/skip-probe", show_default=True,
              help="Folder for probe.md/csv/tex.")
@click.option("--clips", type=click.IntRange(min=1), default=32, show_default=True, help="Test clips per run.")
@_friendly
def probe(runs, out, clips):
    """Probe RUNS (run folders, or run store folders: every finished run in them): the last checkpoint's
    bottleneck, then bottleneck and skips 2, 3, replaced by zeros, ones or noise. Example:
    repro probe runs/skip-probe
    """
    from pathlib import Path

    import pandas as pd

    from .probe import probe_run
    from .report.tables import write_table
    from .runs import list_runs

    folders = []
    for path in map(Path, runs):
        is_run = (path / "config.toml").is_file()
        folders += [path] if is_run else [path / name for name, _, state in list_runs(path) if state == "done"]
    if not folders:
        raise FileNotFoundError(f"no finished runs in {', '.join(runs)}; train them first (make reproduce-skip-probe)")
    rows = pd.DataFrame([row for folder in folders for row in probe_run(folder, clips)])
    caption = "Mean |Δ output| ([-1, 1] scale) and PSNR (dB) against the target, original and replaced."
    paths = write_table(rows, Path(out), "probe", caption=caption)
    click.echo(paths["md"].read_text())
