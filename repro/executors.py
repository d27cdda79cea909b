"""Executors of a grid: the runs of repro.grids that the run store lacks, on this machine's cores (a process
pool) or on a Ray cluster. The run store decides what is left, so a killed grid reruns only the rest.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm import tqdm

from .config import RunConfig, training_identity
from .grids import GridRun, placed
from .runs import RunStore, is_finished


def _worker(cfg: RunConfig, store_root: str, threads: int) -> str:
    """One run in a pool process or Ray task (`threads`: what it declared to Ray; the run sets its own count)."""
    from .pipeline import execute_run

    return str(execute_run(cfg, RunStore(Path(store_root)), progress=False))


def stop_when_orphaned(parent: int) -> None:
    """Pool initializer: end this worker when the sweep that started it (pid `parent`) is gone. A sweep killed
    outright (SIGKILL, or SIGTERM to it alone) would otherwise leave its workers training the runs already
    queued to them, into the store a rerun of the sweep is using."""
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int, every: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)  # as if killed with the sweep: the run's lock names a dead process and a rerun takes it over


def plan_parallelism(pending: int, device: str, cores: int | None = None) -> tuple[int, int]:
    """(parallel runs, threads per run): small CPU runs scale better side by side than across threads."""
    cores = cores or os.cpu_count() or 1
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) or pending <= 1:
        return 1, cores
    jobs = min(pending, cores)
    return jobs, max(1, cores // jobs)


EXECUTORS = ("local", "ray")


def run_grid(
    runs: list[GridRun],
    store: RunStore,
    jobs: int | None = None,
    progress: bool = True,
    executor: str = "local",
    address: str | None = None,
) -> dict[str, str]:
    """Run what is not done yet; returns {run folder name: error} of the runs that failed (the rest go on).

    executor "local" uses this machine's cores; "ray" sends one task per run to a Ray cluster (`address`,
    or a local instance), each declaring its CPU threads and, on CUDA, one GPU. The run store decides what
    is left, so switching executors mid-sweep is safe.
    """
    from .budget import check_fits
    from .pipeline import datasets, resolve_device

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    unique = {run.folder: run.config for run in placed(runs, store)}
    pending = [cfg for folder, cfg in unique.items() if not is_finished(folder)]
    if not pending:
        return {}
    for cfg in {(cfg.model, cfg.data, cfg.train, cfg.exec): cfg for cfg in pending}.values():
        check_fits(cfg, resolve_device(cfg.exec.device))  # every size, before data are made or workers start
    for cfg in {cfg.data: cfg for cfg in pending}.values():
        datasets(cfg)  # generate synthetic data and fill the frame cache once, before the workers start
    threads = pending[0].exec.threads or 1  # a run's own count (its numerics), whatever the jobs beside it
    planned_jobs, _ = plan_parallelism(len(pending), pending[0].exec.device)
    jobs = jobs or max(1, min(planned_jobs, (os.cpu_count() or 1) // threads))
    failures: dict[str, str] = {}
    bar = tqdm(total=len(pending), desc=f"runs ({executor}, {jobs} at a time)", disable=not progress)
    for wave in training_waves(pending):
        for cfg, error in _execute(wave, store, executor, jobs, threads, address, progress):
            _record(cfg, error, store, failures, bar)
    bar.close()
    return failures


def training_waves(pending: list[RunConfig]) -> list[list[RunConfig]]:
    """One run per distinct training first, then the runs that differ from one of them only in [eval]: those
    adopt its checkpoints instead of training the same network again side by side."""
    leaders: dict[str, RunConfig] = {}
    followers = []
    for cfg in pending:
        identity = training_identity(cfg)
        if identity in leaders:
            followers.append(cfg)
        else:
            leaders[identity] = cfg
    return [wave for wave in (list(leaders.values()), followers) if wave]


def _execute(
    pending: list[RunConfig],
    store: RunStore,
    executor: str,
    jobs: int,
    threads: int,
    address: str | None,
    progress: bool,
):
    """Yield (config, error or None) as the runs of `pending` finish on the chosen executor."""
    from .pipeline import execute_run

    if executor == "ray":
        yield from _ray_execute(pending, store, threads, address)
    elif jobs == 1:
        for cfg in pending:
            yield cfg, _capture(lambda cfg=cfg: execute_run(cfg, store, progress=progress))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=stop_when_orphaned, initargs=(os.getpid(),)
        ) as pool:
            futures = {pool.submit(_worker, cfg, str(store.root), threads): cfg for cfg in pending}
            for future in as_completed(futures):
                yield futures[future], _capture(future.result)


def _ray_execute(pending: list[RunConfig], store: RunStore, threads: int, address: str | None):
    """Yield (config, error or None) as Ray tasks finish; a task whose worker dies is retried twice."""
    try:
        import ray
    except ImportError:
        raise ValueError("the ray executor needs Ray: pip install 'mnad-repro[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    gpus = 1 if pending[0].exec.device.startswith("cuda") else 0
    task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=2, retry_exceptions=False)(_worker)
    store_root = str(store.root.resolve())  # a shared path on a cluster
    refs = {task.remote(cfg, store_root, threads): cfg for cfg in pending}
    while refs:
        (ref,), _ = ray.wait(list(refs), num_returns=1)
        cfg = refs.pop(ref)
        yield cfg, _capture(lambda ref=ref: ray.get(ref))


def _capture(call) -> str | None:
    try:
        call()
    except Exception as error:  # one failed run must not lose the others; its status.json says why
        return f"{type(error).__name__}: {error}"
    return None


def _record(cfg: RunConfig, error: str | None, store: RunStore, failures: dict[str, str], bar) -> None:
    if error is not None:
        failures[store.run_dir(cfg).name] = error
    bar.update()
