"""The `repro` command line: parse, validate, call one library function. Only this module imports click."""

from __future__ import annotations

import errno

import click


class ReproError(click.ClickException):
    """A problem with the user's input, shown as one line with exit code 2 (no traceback)."""

    exit_code = 2


class Interrupted(click.ClickException):
    """Ctrl-C: every run resumes from its last checkpoint, so the same command finishes it."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted; rerun the same command to resume")


OS_FIXES = {
    errno.ENOSPC: "free space on that file system (or use another: --runs for the run store, $REPRO_CACHE for the "
    "frame cache), then rerun the same command: finished work is kept and runs resume",
    errno.EDQUOT: "free space within your quota (or use another file system: --runs, $REPRO_CACHE), then rerun the "
    "same command: finished work is kept and runs resume",
    errno.EROFS: "the file system is mounted read-only: point --runs (the run store) or $REPRO_CACHE (the frame "
    "cache) at a writable folder, then rerun the same command",
    errno.EACCES: "give this user access to it, or point --runs or $REPRO_CACHE at a folder of your own, then rerun "
    "the same command",
    errno.ELOOP: "a symbolic link in this path points back at itself: fix or remove the link",
    errno.ENOENT: "check the path (a folder may have been moved or unmounted)",
}
OS_FIXES[errno.EPERM] = OS_FIXES[errno.EACCES]


def os_error_line(error: OSError) -> str:
    """One line for an operating-system error: the file, what went wrong, the fix."""
    where = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
    what = error.strerror or str(error)
    fix = OS_FIXES.get(error.errno, "fix the file or folder named, then rerun the same command")
    return f"cannot use {where or 'a file'}: {what}. Fix: {fix}"


def one_line(error: Exception) -> str | None:
    """The line a user sees for `error`: every error of input, data, run store or operating system; None for a
    defect of repro itself, which keeps its traceback."""
    from .config import ConfigError
    from .data.layout import DataError
    from .runs import RunError

    if isinstance(error, OSError) and error.errno is None:  # a message of ours, e.g. "no finished runs in ..."
        return str(error)
    if isinstance(error, OSError):
        return None if error.errno == errno.EPIPE else os_error_line(error)  # click handles a closed pipe
    if isinstance(error, (ConfigError, DataError, RunError, ValueError)):
        return str(error)
    return None


class ReproGroup(click.Group):
    """The one error path of the CLI: every error a user can cause or meet is one line with exit code 2 (130
    for Ctrl-C); `--debug` or REPRO_DEBUG=1 lets it through with its traceback."""

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug")
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            if debug:
                raise
            raise Interrupted() from None
        except Exception as error:
            line = None if debug else one_line(error)
            if line is None:
                raise
            raise ReproError(line) from None


@click.group(cls=ReproGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="repro")
@click.option(
    "--debug",
    is_flag=True,
    envvar="REPRO_DEBUG",
    help="Show the traceback of an error instead of its one line (also REPRO_DEBUG=1).",
)
def main(debug: bool) -> None:
    """Reproduce, ablate and extend memory-augmented autoencoders for video anomaly detection."""


def _methods() -> list[str]:
    from .models.registry import METHODS

    return list(METHODS)


def _tasks() -> list[str]:
    from .models.mnad import TASKS

    return list(TASKS)


def _model_option(help: str, default: str | None = "mnad"):
    """--model, its choices the registered methods."""
    return click.option(
        "--model", type=click.Choice(_methods()), default=default, show_default=bool(default), help=help
    )


def _task_option(help: str):
    """--task: MNAD's task; the option maps onto model.mnad.task, which other methods refuse."""
    return click.option("--task", type=click.Choice(_tasks()), default=None, help=help)


@main.command(short_help="Time training and evaluation of a method; prints JSON.")
@_model_option("The method to time; --task and --width are MNAD's, --set reaches any other setting.")
@_task_option("MNAD: prediction (4 frames -> 5th, the paper profile's) or reconstruction (1 frame -> itself).")
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
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    default="fp32",
    show_default=True,
    help="Autocast precision of the convolutions; the memory maths stays fp32.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
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
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other setting of the paper profile, e.g. --set model.memae.width=24.",
)
def bench(model, task, size, width, batch, precision, device, threads, seconds, compiled, settings):
    """Print one JSON object with train_fps, eval_fps (the test-time update, frame by frame; null for a
    method without state memory) and eval_fps_no_update (batched), and ped2_epoch_seconds: a Ped2-size
    training epoch (2,550 frames) at train_fps.

    Random data, the paper profile's settings, the same step functions as training and evaluation. Example:
    repro bench --task pred --size 256 --width 64 --batch 4 --precision fp32
    """
    import json

    import torch

    from .bench import benchmark

    if threads:
        torch.set_num_threads(threads)
    overrides = (
        f"model.name={model}",
        *([f"model.mnad.task={task}"] if task else []),
        *([f"model.mnad.width={width}"] if width else []),
        *settings,
    )
    result = benchmark(overrides, size, batch, precision, device, seconds, compiled=compiled)
    click.echo(json.dumps(result))


# ------------------------------------------------------------------------------------ runs and sweeps
def _run_options(function):
    """Options shared by every verb that resolves a run config."""
    options = [
        click.option(
            "--profile",
            default="synthetic",
            show_default=True,
            help="A profile in ablations/profiles/ (synthetic | paper) or a path to a TOML file.",
        ),
        click.option(
            "--dataset",
            default=None,
            metavar="NAME",
            help="synthetic (no download), or the folder --data/NAME in the canonical layout: ped2, avenue, "
            "shanghaitech (checked against the published counts) or any other (default: the profile's).",
        ),
        click.option(
            "--data",
            "data_root",
            type=click.Path(exists=True, file_okay=False),
            default=None,
            help="Folder holding <dataset>/training/frames and <dataset>/testing/frames.",
        ),
        _task_option("MNAD's task: pred, 4 frames -> the 5th; recon, a frame -> itself (default: the profile's)."),
        click.option(
            "--set",
            "settings",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any config field, e.g. --set train.epochs=2 --set model.mnad.width=8 (repeatable).",
        ),
        click.option(
            "--runs",
            "runs_root",
            type=click.Path(file_okay=False),
            default="runs",
            show_default=True,
            help="The run store: one folder per config hash; finished runs are never recomputed.",
        ),
        click.option(
            "--device",
            type=click.Choice(["auto", "cpu", "cuda"]),
            default=None,
            help="Where to run (default: the profile's).",
        ),
        click.option(
            "--precision",
            type=click.Choice(["fp32", "bf16", "fp16"]),
            default=None,
            help="Autocast precision of the convolutions; memory maths stays fp32.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _base_overrides(dataset, data_root, task, settings, device, precision, lam=None) -> tuple[str, ...]:
    overrides = []
    if dataset:
        overrides.append(f"data.name={dataset}")
    if data_root:
        overrides.append(f"data.root={_absolute(data_root)}")
    if task:
        overrides.append(f"model.mnad.task={task}")
    if device:
        overrides.append(f"exec.device={device}")
    if precision:
        overrides.append(f"exec.precision={precision}")
    if lam is not None:
        overrides.append(f"eval.mnad.lambda_score={lam}")
    return (*overrides, *settings)


def _absolute(path: str | None) -> str | None:
    """A --data folder as an absolute path, so that the run's config says which folder it read."""
    from pathlib import Path

    return None if path is None else str(Path(path).resolve())


def _lambda_option(function):
    return click.option(
        "--lambda",
        "lam",
        type=click.FloatRange(0, 1),
        default=None,
        help="λ, the PSNR weight of the anomaly score (eq. 16; 0.6 pred / 0.7 recon).",
    )(function)


@main.command(short_help="Train one run, evaluate its checkpoints, write metrics.")
@_run_options
@_lambda_option
@click.option("--seed", type=int, default=None, help="Random seed (default: the profile's).")
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
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE", help="Evaluation fields, e.g. eval.mnad.gamma=0.02."
)
def evaluate(run, no_update, lam, settings):
    """Re-evaluate a finished run's checkpoints with other evaluation settings (no retraining).

    The result is a run of its own (its config differs in [eval]) that reuses the checkpoints of RUN.
    Example: repro evaluate runs/3f2a9c1b0d4e --no-test-time-update
    """
    import json
    from pathlib import Path

    from .config import load_config
    from .pipeline import adopt_checkpoints, execute_run
    from .runs import RunStore, finish_command, is_finished, status

    source = Path(run)
    overrides = (
        *(["eval.mnad.test_time_update=false"] if no_update else []),
        *([f"eval.mnad.lambda_score={lam}"] if lam is not None else []),
        *settings,
    )
    for override in overrides:
        if not override.startswith(("eval.", "exec.")):
            raise ReproError(f"evaluate changes only eval.* and exec.* fields, not {override.split('=')[0]!r}")
    finish = f"`{finish_command(source)}`, then rerun this command"
    if not is_finished(source):
        raise ReproError(
            f"run {source} is not finished (its status: {status(source)['state']}) and evaluate never "
            f"trains; finish it with {finish}"
        )
    cfg = load_config(source / "config.toml", overrides)
    store = RunStore(source.parent)
    if not store.is_done(cfg):
        target = store.prepare(cfg)
        adopt_checkpoints(cfg, target, store)
        if not store.checkpoint_path(target, cfg.train.epochs).exists():
            raise ReproError(_unusable_checkpoints(source, cfg.train.epochs, finish))
    result = execute_run(cfg, store)
    click.echo(f"run: {result}")
    click.echo(json.dumps(store.read_metrics(result)["default"], indent=2))


def _unusable_checkpoints(source, epochs: int, finish: str) -> str:
    """Why the checkpoints of a finished run cannot be re-scored, and the command that retrains them."""
    from .runs import is_finished, status

    if not is_finished(source):  # a checkpoint of it was unreadable and has been moved aside
        return f"{status(source)['error']}; evaluate never trains: retrain it from the last good one with {finish}"
    return (
        f"{source} keeps no checkpoint of its last epoch ({epochs}), which evaluate needs; retrain it: delete "
        f"{source / 'metrics.json'} and run {finish}"
    )


def _grid_options(function):
    """Options of every verb that trains a grid of runs (sweep, claims): where, from what, how parallel."""
    options = [
        click.option(
            "--profile",
            default="synthetic",
            show_default=True,
            help="synthetic (the stand-in presets, minutes on a CPU) or paper (real data, a GPU).",
        ),
        click.option(
            "--data",
            "data_root",
            type=click.Path(exists=True, file_okay=False),
            default=None,
            help="Folder holding the real datasets (ped2/, avenue/, shanghaitech/); default: synthetic stand-ins.",
        ),
        click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override any field for every run."),
        click.option(
            "--runs",
            "runs_root",
            type=click.Path(file_okay=False),
            default="runs",
            show_default=True,
            help="The run store (finished runs are reused, also those of other targets).",
        ),
        click.option(
            "--jobs",
            type=click.IntRange(min=1),
            default=None,
            help="Runs in parallel (default: one per core on a CPU, each with one thread).",
        ),
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: this machine's cores; ray: one Ray task per run (pip install 'repro[ray]').",
        ),
        click.option("--address", default=None, help="Ray cluster address (default: start a local Ray instance)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@main.command(short_help="Run every cell of a table declaration; write its table.")
@click.argument("table")
@_grid_options
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds per cell.")
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Report folder (default: reports/<table name>)."
)
def sweep(table, profile, data_root, seeds, settings, runs_root, out, jobs, executor, address):
    """Run every cell of the table declaration TABLE (a shipped name such as table5, or a path to a TOML
    file) and write its report (md, csv, tex).

    Killing a sweep and rerunning it finishes only the runs that are left.
    Example: repro sweep table5 --seeds 2
    """
    from pathlib import Path

    from .ablation import load_table, run_grid, table_grid
    from .report.build import declaration_report
    from .runs import RunStore

    declaration = load_table(table)
    runs = table_grid(declaration, profile, seeds, _absolute(data_root), tuple(settings))
    store = RunStore(Path(runs_root))
    failures = run_grid(runs, store, jobs, executor=executor, address=address)
    paths = declaration_report(declaration, runs, store, Path(out or f"reports/{declaration.name}"))
    click.echo(paths["md"].read_text())
    click.echo("written: " + ", ".join(str(p) for p in paths.values()))
    _fail_if_any(failures)


def _fail_if_any(failures: dict[str, str]) -> None:
    if failures:
        lines = "\n".join(f"  runs/{name}: {error}" for name, error in failures.items())
        raise click.ClickException(f"{len(failures)} run(s) failed (their status.json says why):\n{lines}")


@main.command(short_help="Check the papers' and the study's claims over seeds; write a reproducibility report.")
@click.argument("claims_file", metavar="[CLAIMS.toml]", required=False, type=click.Path(exists=True, dir_okay=False))
@_grid_options
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="reports/claims",
    show_default=True,
    help="Report folder: claims.md, claims.csv, index.html.",
)
def claims(claims_file, profile, data_root, settings, runs_root, out, jobs, executor, address):
    """Train what the run store lacks for every claim of CLAIMS.toml, then give each claim a verdict from paired
    per-seed differences (supported, partly supported, contradicted, inconclusive) and write the report.
    CLAIMS.toml defaults to the shipped ablations/claims.toml; a claim's arms win over --set on the keys they set,
    and its keep_profile keys take the profile's value (e.g. MemAE's own epochs) whatever --set says.

    Killing it and rerunning it finishes only the runs that are left.
    Example: repro claims ablations/claims.toml --set train.epochs=4 --set train.checkpoint_every=2
    """
    from pathlib import Path

    from .ablation import run_grid
    from .claims import SHIPPED, claim_runs, judge, load_claims
    from .report.claims import claims_report
    from .runs import RunStore

    claims_file = claims_file or SHIPPED
    declared = load_claims(claims_file)
    data_root = _absolute(data_root)
    runs = claim_runs(declared, profile, data_root, tuple(settings))  # refuses a bad claim before training
    store = RunStore(Path(runs_root))
    failures = run_grid(runs, store, jobs, executor=executor, address=address)
    title = f"Claims of {claims_file}, profile {profile}, " + (
        f"data {data_root}" if data_root else "synthetic stand-ins"
    )
    paths = claims_report(judge(declared, runs, store), Path(out), title)
    click.echo(paths["md"].read_text())
    click.echo("written: " + ", ".join(str(p) for p in paths.values()))
    _fail_if_any(failures)


ABLATION_FLAGS = {
    "no_separateness": "model.mnad.separateness=0",
    "no_compactness": "model.mnad.compactness=0",
    "no_test_time_update": "eval.mnad.test_time_update=false",
}
# ablate options that set one config key to their value: option -> (config key, variant name part)
KEYED_FLAGS = {
    "kmeans_init": ("model.mnad.kmeans_init_steps", "kmeans-init"),
    "reseed_after": ("model.mnad.reseed_after_steps", "reseed-after"),
    "diversity": ("model.mnad.diversity", "diversity"),
    "normaliser": ("model.mnad.update_normaliser", "normaliser"),
    "item_init": ("model.mnad.item_init", "item-init"),
    "gamma_quantile": ("eval.mnad.gamma_quantile", "gamma-quantile"),
}


@main.command(short_help="Compare a variant with the baseline over shared seeds.")
@_run_options
@_lambda_option
@click.option("--no-separateness", is_flag=True, help="Variant without the separateness loss (λ_s = 0, eq. 12).")
@click.option("--no-compactness", is_flag=True, help="Variant without the compactness loss (λ_c = 0, eq. 10).")
@click.option(
    "--no-test-time-update", is_flag=True, help="Variant that never updates the items at test time (γ gate off)."
)
@click.option(
    "--no-memory",
    is_flag=True,
    help="Variant without memory: MNAD's 'w/o Mem.' network, or MemAE's memory-less AE (ae3d).",
)
@click.option("--skip/--no-skip", "skip", default=None, help="Variant with or without the U-Net skip connections.")
@click.option(
    "--salt-pepper",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    metavar="P",
    help="Variant trained on inputs with a fraction P of pixels set to 0 or 1 (e.g. 0.25).",
)
@click.option(
    "--uniform-memory",
    type=float,
    default=None,
    is_flag=False,
    flag_value=1.0,
    metavar="[WEIGHT]",
    help="Variant with the study's uniform-memory supervision (weight 1 when given alone).",
)
@click.option(
    "--kmeans-init",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="Collapse remedy (SPEC sec. 12): items start as the k-means centres of the first K steps' queries.",
)
@click.option(
    "--reseed-after",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="Collapse remedy: an item nearest to no query for K training steps is re-seeded from a random query.",
)
@click.option(
    "--diversity",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="W",
    help="Collapse remedy: weight W of the diversity loss (negative entropy of the mean soft assignment).",
)
@click.option(
    "--normaliser",
    type=click.Choice(["all", "assigned"]),
    default=None,
    help="Collapse remedy: eq. 5's update normaliser over all queries (reference code) or the assigned ones (paper).",
)
@click.option(
    "--item-init",
    type=click.Choice(["uniform", "gaussian"]),
    default=None,
    help="Collapse remedy: items start as uniform [0,1) rows (reference) or Gaussian ones, each L2-normalised.",
)
@click.option(
    "--gamma-quantile",
    type=click.FloatRange(0, 1),
    default=None,
    metavar="Q",
    help="Variant whose test-time update threshold γ is the training frames' regular score at quantile Q.",
)
@_model_option("Method of baseline and variant (default: the profile's, MNAD).", default=None)
@click.option(
    "--shrink-threshold",
    type=click.FloatRange(min=0),
    default=None,
    metavar="K",
    help="MemAE variant with hard-shrinkage threshold K/N (N = the memory size; 0 = off; official 5).",
)
@click.option("--addressing", type=click.Choice(["dot", "cosine"]), default=None, help="MemAE variant's addressing.")
@click.option(
    "--entropy",
    type=click.FloatRange(min=0),
    default=None,
    metavar="W",
    help="MemAE variant's entropy-loss weight (official 0.0002).",
)
@click.option(
    "--memory-size",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="MemAE variant's number of memory items (official 2000).",
)
@click.option("--variant-set", multiple=True, metavar="KEY=VALUE", help="Any other change for the variant only.")
@click.option(
    "--seeds", type=click.IntRange(min=1), default=2, show_default=True, help="Seeds; baseline and variant share them."
)
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Report folder (default: reports/ablate-<variant>)."
)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Runs in parallel (default: one per core).")
def ablate(
    profile,
    dataset,
    data_root,
    task,
    settings,
    runs_root,
    device,
    precision,
    lam,
    no_separateness,
    no_compactness,
    no_test_time_update,
    no_memory,
    skip,
    salt_pepper,
    uniform_memory,
    model,
    shrink_threshold,
    addressing,
    entropy,
    memory_size,
    variant_set,
    seeds,
    out,
    jobs,
    **keyed,
):
    """Compare the profile's configuration (baseline) with a variant, same seeds, and print the difference.

    Every flag changes the variant only; several flags make one combined variant.
    Example: repro ablate --no-separateness --seeds 2
    """
    from pathlib import Path

    from .ablation import run_grid, variant_grid
    from .config import load_config
    from .report.build import ablation_report
    from .runs import RunStore

    flags = dict(
        no_separateness=no_separateness, no_compactness=no_compactness, no_test_time_update=no_test_time_update
    )
    changes = [ABLATION_FLAGS[name] for name, on in flags.items() if on]
    names = [name.replace("_", "-") for name, on in flags.items() if on]
    model_override = (f"model.name={model}",) if model else ()
    base = (*model_override, *_base_overrides(dataset, data_root, task, settings, device, precision, lam))
    if no_memory:
        baseline = load_config(profile, base).model
        changes += list(baseline.method.without_memory(baseline.settings))
        names.append("no-memory")
    if skip is not None:
        changes.append(f"model.mnad.skips={str(skip).lower()}")
        names.append("skip" if skip else "no-skip")
    if salt_pepper is not None:
        changes.append(f"data.salt_pepper={salt_pepper}")
        names.append(f"salt-pepper-{salt_pepper:g}")
    if uniform_memory is not None:
        changes.append(f"model.mnad.uniform_memory={uniform_memory}")
        names.append(f"uniform-memory-{uniform_memory:g}")
    keyed_changes, keyed_names = _keyed_variant(keyed)
    changes += keyed_changes
    names += keyed_names
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


def _keyed_variant(values: dict) -> tuple[list[str], list[str]]:
    """The KEYED_FLAGS options that were given, as (overrides, name parts): kmeans_init=20 -> kmeans-init-20."""
    chosen = {option: value for option, value in values.items() if value is not None}
    changes = [f"{KEYED_FLAGS[option][0]}={value}" for option, value in chosen.items()]
    names = [f"{KEYED_FLAGS[option][1]}-{value}" for option, value in chosen.items()]
    return changes, names


def _memae_variant(
    profile,
    base: tuple[str, ...],
    shrink_multiple: float | None,
    addressing: str | None,
    entropy: float | None,
    memory_size: int | None,
) -> tuple[list[str], list[str]]:
    """The MemAE flags as (overrides, name parts); the shrink threshold is K/N of the variant's memory size."""
    from .config import load_config

    changes, names = [], []
    if memory_size is not None:
        changes.append(f"model.memae.num_items={memory_size}")
        names.append(f"memory-size-{memory_size}")
    if shrink_multiple is not None:
        items = memory_size or load_config(profile, base).model.memae.num_items
        changes.append(f"model.memae.shrink_threshold={shrink_multiple / items!r}")
        names.append(f"shrink-{shrink_multiple:g}-over-n")
    if addressing is not None:
        changes.append(f"model.memae.addressing={addressing}")
        names.append(f"addressing-{addressing}")
    if entropy is not None:
        changes.append(f"model.memae.entropy={entropy!r}")
        names.append(f"entropy-{entropy:g}")
    return changes, names


# ------------------------------------------------------------------------------------------------ data
@main.group(short_help="Import, check, synthesise and benchmark datasets.")
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
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Videos converted in parallel.")
def data_import(form, src, dst, name, labels, jobs):
    """Convert an original distribution SRC into DST/<name> (resumable; SRC is only read). FORM videos: your
    own footage, SRC/training/*.mp4 and SRC/testing/*.mp4 (.avi, .mov, ...), decoded with OpenCV.

    Example: repro data import shanghaitech ~/Downloads/shanghaitech data/
    Example: repro data import videos footage/ data/ --name campus --labels footage/labels.npy
    """
    from .data.extract import import_avenue, import_shanghaitech, import_ucsd, import_videos

    if form == "videos":
        if not name:
            raise ReproError("data import videos needs --name NAME, the dataset's folder under DST (e.g. campus)")
        dataset = import_videos(src, dst, name, labels=labels, workers=jobs)
    elif form == "ucsd":
        dataset = import_ucsd(src, dst, name=name or "ped2", workers=jobs)
    elif form == "avenue":
        dataset = import_avenue(src, dst, labels=labels, workers=jobs)
    else:
        dataset = import_shanghaitech(src, dst, workers=jobs)
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
@_model_option("The method to train: its clip window must fit in the videos.")
@_task_option("MNAD's task (pred: windows of 5 frames, the default; recon: 1).")
def data_check(root, name, labels, size, grayscale, model, task):
    """Validate ROOT/NAME (layout, every frame, labels, clip windows of the model) and print a summary:
    counts, the fingerprint that enters a run's identity, and the disk space a frame cache needs; exit code 2
    with the reason if invalid.

    Example: repro data check data/ ped2 --labels published
    """
    import json
    import warnings

    from .config import load_config
    from .data.check import check_dataset
    from .data.clips import window_length

    cfg = load_config(None, (f"model.name={model}", *([f"model.mnad.task={task}"] if task else ())))
    layout = cfg.model.method.layout(cfg.model.settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = check_dataset(
            root, name, labels, size=size, grayscale=grayscale, window=window_length(layout.in_frames, layout.predict)
        )
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
    from .data.synthetic import write_synthetic

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

    from .data.check import benchmark_cache

    click.echo(json.dumps(benchmark_cache(frames, size)))


# ------------------------------------------------------------------------------------------- reports
@main.command(short_help="Write a report folder (tables, figures, index) from finished runs.")
@click.argument("source")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Report folder, e.g. reports/table6.")
@click.option(
    "--runs",
    "runs_root",
    type=click.Path(file_okay=False),
    default="runs",
    show_default=True,
    help="Run store a table declaration's runs are looked up in.",
)
@click.option("--profile", default="synthetic", show_default=True, help="As given to `repro sweep` (same hashes).")
@click.option(
    "--data",
    "data_root",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="As given to `repro sweep`.",
)
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="As given to `repro sweep`.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="As given to `repro sweep`.")
def report(source, out, runs_root, profile, data_root, seeds, settings):
    """Report SOURCE, a run store folder (every finished run) or a table declaration (a shipped name such as
    table6 or a path; its runs, found by config hash). Reads only the run store, never trains; a run with
    missing files is named and skipped in part. Example: repro report ablations/table6.toml --out reports/table6
    """
    from pathlib import Path

    from .report.index import report_source

    index = report_source(
        Path(source), Path(out), Path(runs_root), profile, _absolute(data_root), seeds, tuple(settings)
    )
    click.echo(f"written: {index} and {index.with_suffix('.html')}")


@main.command(short_help="Skip probe: how much the output changes with the bottleneck replaced.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="reports/skip-probe",
    show_default=True,
    help="Folder for probe.md/csv/tex.",
)
@click.option("--clips", type=click.IntRange(min=1), default=32, show_default=True, help="Test clips per run.")
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
