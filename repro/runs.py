"""The run store: one folder per config hash, every file written atomically (docs/configs.md#the-run-store).

    runs/<hash>/config.toml, status.json, train.jsonl, checkpoints/epoch_XXX.pt, signals/epoch_XXX.npz,
    metrics.json, and `lock` while a process runs it.

A file is either its previous version or its new one, never half of each: writes go to a temporary file in
the same folder, are fsynced, then `os.replace`d. A killed run resumes from its last checkpoint; a done run
is never recomputed.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import re
import reprlib
import shlex
import socket
import subprocess
import tempfile
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import DISTRIBUTION, __version__
from .atomic import atomic_file, atomic_write, named
from .config import ConfigError, RunConfig, config_hash, load_config, to_toml, training_identity
from .record import ProbeRecord, RecordError, RunMetrics

STATES = ("pending", "running", "done", "failed")
PER_FRAME = ("video", "frame", "label", "anomaly_type")  # in every signals file, beside the method's own fields
EPOCH_FILE = re.compile(r"^epoch_(\d+)\.(pt|npz)$")
PACKAGE_DIR = Path(__file__).resolve().parent


class RunError(RuntimeError):
    """A run folder's file is missing, corrupt or locked; the message names the file and the fix."""


class UnreadableCheckpoint(RunError):
    """A checkpoint file that torch cannot load (truncated, foreign); `reason` says what torch said."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"checkpoint {path} is unreadable ({reason}). Fix: restore it from a copy, or retrain its run in a store "
            f"of its own (the run stays as it is) with `{retrain_command(Path(path).parent.parent)}`"
        )
        self.reason = reason


class TornLineWarning(UserWarning):
    """A jsonl line could not be parsed (a write was cut short) and was skipped."""


# ---------------------------------------------------------------------------------- json and jsonl files
def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    """The JSON in `path`, or a RunError naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} not found") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path} is not valid JSON ({error}); delete it and rerun the run") from None


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line, flushed and fsynced; a torn last line left by a crash is closed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "ab+") as handle:
            torn = False
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                torn = handle.read(1) != b"\n"
            handle.write((b"\n" if torn else b"") + json.dumps(record).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:  # a failed write names no file
        raise named(error, path) from None


def keep_epochs_up_to(path: Path, epoch: int) -> None:
    """Drop the records of `path` after `epoch`: a run resumed from that epoch's checkpoint logs them again."""
    records = read_jsonl(path)
    kept = [record for record in records if record.get("epoch", 0) <= epoch]
    if len(kept) < len(records):
        atomic_write(path, "".join(json.dumps(record) + "\n" for record in kept))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The training records of `path` ([] if absent); a line that does not parse is skipped with a
    TornLineWarning, one that parses but is not a training record is a RunError naming the line."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(
                f"{path}:{number}: skipped a torn line (a write was interrupted)", TornLineWarning, stacklevel=2
            )
            continue
        if not _training_record(record):
            raise RunError(
                f"{path}:{number} is not a training record (a JSON object with an integer epoch, numbers and a "
                f"memory table): {reprlib.repr(record)}. Fix: delete that line and rerun the run"
            )
        records.append(record)
    return records


def _training_record(record: Any) -> bool:
    """What `train` appends per epoch: {"epoch": int, "lr": ..., losses...: numbers, "memory": {...}}."""
    if not (isinstance(record, dict) and type(record.get("epoch")) is int):
        return False
    numbers = (value for key, value in record.items() if key not in ("epoch", "memory"))
    return isinstance(record.get("memory", {}), dict) and all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in numbers
    )


# --------------------------------------------------------------------------------------------- status
def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def status(run: Path) -> dict[str, Any]:
    """The run's status.json ({"state": "pending"} before one is written)."""
    path = Path(run) / "status.json"
    if not path.exists():
        return {"state": "pending"}
    record = read_json(path)
    if not (isinstance(record, dict) and record.get("state") in STATES):
        raise RunError(
            f"{path} is not a run status (a JSON object whose state is one of {', '.join(STATES)}); "
            "delete it and rerun the run"
        )
    return record


def set_status(run: Path, state: str, error: str | None = None) -> None:
    """Write status.json atomically: state, error, pid, host, created and updated times (UTC)."""
    if state not in STATES:
        raise ValueError(f"run state must be one of {', '.join(STATES)}; got {state!r}")
    previous = status(run)
    now = _now()
    record = {
        "state": state,
        "error": error,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "created": previous.get("created", now),
        "updated": now,
    }
    atomic_write_json(Path(run) / "status.json", record)


# ------------------------------------------------------------------------------------------------ lock
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _try_lock(path: Path, owner: dict[str, Any]) -> bool:
    """Create `path` holding `owner` atomically (link of a complete temp file); False if it exists."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".lock.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(owner, handle)
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temp)


@contextlib.contextmanager
def run_lock(run: Path) -> Iterator[None]:
    """Hold `run/lock` (pid and host) for the block; a lock left by a dead process on this host is taken over."""
    path = Path(run) / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
    while not _try_lock(path, owner):
        try:
            holder = json.loads(path.read_text())
        except FileNotFoundError:
            continue  # released meanwhile
        except json.JSONDecodeError:
            holder = {}
        if holder.get("host") == owner["host"] and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        raise RunError(
            f"{run} is being run by pid {holder.get('pid')} on {holder.get('host')} (see {path}); "
            f"wait for it, or delete {path} if that process is gone"
        )
    _remove_leftovers(Path(run))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _remove_leftovers(run: Path) -> None:
    """Delete the temporary files of a writer killed mid-write (SIGKILL skips its cleanup). Called with the
    lock held, so no live process writes this run; the lock's own temporary files are left alone."""
    for leftover in run.rglob(".*.tmp"):
        if not leftover.name.startswith(".lock."):
            leftover.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- checkpoints and signals
def _epochs(folder: Path, suffix: str) -> list[tuple[int, Path]]:
    """(epoch, path) of the folder's epoch_XXX.<suffix> files, by epoch; temporary files are ignored."""
    if not folder.is_dir():
        return []
    found = [(EPOCH_FILE.match(p.name), p) for p in folder.iterdir()]
    return sorted((int(m[1]), p) for m, p in found if m and m[2] == suffix)


def checkpoint_path(run: Path, epoch: int) -> Path:
    return Path(run) / "checkpoints" / f"epoch_{epoch:03d}.pt"


def save_checkpoint(run: Path, epoch: int, state: dict[str, Any]) -> Path:
    """torch.save `state` (state dicts, items, optimizer) atomically; returns its path."""
    path = checkpoint_path(run, epoch)
    with atomic_file(path) as handle:
        torch.save(state, handle)
    return path


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    return _epochs(Path(run) / "checkpoints", "pt")


def latest_checkpoint(run: Path) -> tuple[int, Path] | None:
    """(epoch, path) of the highest saved epoch, or None."""
    found = checkpoints(run)
    return found[-1] if found else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state saved by `save_checkpoint`, on the CPU, with weights_only=True; RunError if corrupt."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"checkpoint {path} not found") from None
    except Exception as error:  # torch raises several types for a truncated or foreign file
        raise UnreadableCheckpoint(path, f"{type(error).__name__}: {str(error)[:200]}") from None


def discard_checkpoint(run: Path, epoch: int, reason: str) -> str:
    """Move an unreadable checkpoint aside (`epoch_XXX.pt.corrupt`) with what was derived from it (that epoch's
    signals, the metrics, the skip probe), so the run is unfinished and a rerun retrains from the last good
    checkpoint. Returns what happened, in words."""
    path = checkpoint_path(run, epoch)
    aside = path.with_name(path.name + ".corrupt")
    with contextlib.suppress(FileNotFoundError):  # another process (a torchrun rank) moved it first
        os.replace(path, aside)
    signals_path(run, epoch).unlink(missing_ok=True)
    for derived in ("metrics.json", "probe.json"):
        (Path(run) / derived).unlink(missing_ok=True)
    return f"{path} is unreadable ({reason}); moved aside to {aside.name}"


def latest_readable_checkpoint(run: Path) -> tuple[int, dict[str, Any]] | None:
    """(epoch, state) of the newest checkpoint that loads; newer unreadable ones are discarded with a warning."""
    for epoch, path in reversed(checkpoints(run)):
        try:
            return epoch, load_checkpoint(path)
        except UnreadableCheckpoint as error:
            warnings.warn(
                f"{discard_checkpoint(run, epoch, error.reason)}; resuming from the checkpoint before", stacklevel=2
            )
    return None


def signals_path(run: Path, epoch: int) -> Path:
    return Path(run) / "signals" / f"epoch_{epoch:03d}.npz"


def save_signals(run: Path, epoch: int, **arrays: np.ndarray) -> Path:
    """Per-frame raw signals of one evaluated epoch (PSNR, distance, labels, video ids, types) as .npz."""
    path = signals_path(run, epoch)
    if "label" in arrays and (np.asarray(arrays["label"]) < 0).any():
        raise RunError(
            f"{path}: refused to save signals with the placeholder label -1 (frames evaluated without "
            "ground truth); give the test split its labels (testing/labels.npy or data.labels)"
        )
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)
    return path


def load_signals(run: Path, epoch: int, signals_type: type | None = None) -> dict[str, np.ndarray]:
    """The arrays of one evaluated epoch (repro.evaluate.evaluate_model), checked for shape: "video" and "label"
    present, and every per-frame array ("video", "frame", "label", "anomaly_type" and the fields of the method's
    `signals_type`, of which those without a default must be present) of one shape (f,); a RunError naming the
    file otherwise."""
    path = signals_path(run, epoch)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise RunError(f"{path} not found; evaluate the run's checkpoints first") from None
    except (OSError, ValueError) as error:
        raise RunError(f"{path} is unreadable ({error}); delete it and rerun to evaluate that epoch again") from None
    problem = _signals_problem(arrays, signals_type)
    if problem:
        raise RunError(
            f"{path} is not a run's signals (it {problem}). Fix: delete it and the run's metrics.json, then rerun "
            f"`{finish_command(run)}` to evaluate that epoch again"
        )
    return arrays


def _signals_problem(arrays: dict[str, np.ndarray], signals_type: type | None) -> str | None:
    """What is wrong with the arrays of a signals file, in words, or None."""
    fields = signals_type._fields if signals_type else ()
    required = [name for name in fields if name not in signals_type._field_defaults] if signals_type else []
    missing = [name for name in ("video", "label", *required) if name not in arrays]
    if missing:
        return f"lacks {', '.join(missing)}"
    frames = arrays["video"].shape[:1]  # (f,)
    per_frame = [name for name in (*PER_FRAME, *fields) if name in arrays]
    misshapen = [f"{name} {arrays[name].shape}" for name in per_frame if arrays[name].shape != frames]
    return f"has arrays not of the shape {frames} of its video ids: {', '.join(misshapen)}" if misshapen else None


def signal_epochs(run: Path) -> list[int]:
    return [epoch for epoch, _ in _epochs(Path(run) / "signals", "npz")]


# ------------------------------------------------------------------------------------- metrics, record
def write_metrics(run: Path, metrics: RunMetrics) -> None:
    """metrics.json, the one writer of a run's record (repro.record.RunMetrics)."""
    atomic_write_json(Path(run) / "metrics.json", metrics.to_json())


def read_record(run: Path) -> RunMetrics:
    """metrics.json as its typed record, the one reader every report, claim and command goes through; a RunError
    naming the file and the run's state if it is missing, or the key if it is not a run's record."""
    path = Path(run) / "metrics.json"
    if not path.exists():
        state = status(run)["state"]
        raise RunError(
            f"{path} not found: the run is {'unfinished' if state == 'done' else state}; finish it with "
            f"`{finish_command(run)}`"
        )
    try:
        return RunMetrics.from_json(read_json(path))
    except RecordError as error:
        raise RunError(
            f"{path} is not a run's metrics ({error}); delete it and rerun `{finish_command(run)}` to score the "
            "run again from its saved signals"
        ) from None


def read_metrics(run: Path) -> dict[str, Any]:
    """metrics.json as JSON data, read (and checked) through read_record: what `repro train` prints."""
    return read_record(run).to_json()


def write_probe(run: Path, probe: ProbeRecord) -> None:
    """probe.json: the skip probe of the run (repro.probe.probe_run), saved once."""
    atomic_write_json(Path(run) / "probe.json", probe.to_json())


def read_probe(run: Path) -> ProbeRecord:
    """probe.json as its typed record; a RunError naming the file if the run has none or it is not a probe."""
    path = Path(run) / "probe.json"
    if not path.exists():
        raise RunError(f"{path} not found: the run has no saved skip probe; compute it with `repro probe {run}`")
    try:
        return ProbeRecord.from_json(read_json(path))
    except RecordError as error:
        raise RunError(f"{path} is not a skip probe ({error}); delete it and rerun `repro probe {run}`") from None


def finish_command(run: Path) -> str:
    """The command that trains, evaluates and scores `run` from where it stopped (its config.toml as profile)."""
    run = Path(run)
    return f"repro train --profile {shlex.quote(str(run / 'config.toml'))} --runs {shlex.quote(str(run.parent))}"


def retrain_command(run: Path) -> str:
    """The command that trains `run`'s configuration again from scratch in a store of its own, `<store>-retrained`,
    leaving `run` as it is (on the same machine kind and torch build the result is bit-identical:
    docs/reproducibility.md)."""
    run = Path(run)
    retrained = run.parent.with_name(run.parent.name + "-retrained")
    return f"repro train --profile {shlex.quote(str(run / 'config.toml'))} --runs {shlex.quote(str(retrained))}"


def is_finished(run: Path) -> bool:
    """Done by its status and by its files: a metrics.json that read_record accepts (without one the run is
    evaluated again from its checkpoints and signals)."""
    if status(run)["state"] != "done":
        return False
    try:
        read_record(run)
    except RunError:
        return False
    return True


def _git(*args: str, cwd: Path = PACKAGE_DIR) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def project_repository(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The git work tree this package was imported from, if it is this project's: its top level holds the package
    and a pyproject.toml naming the distribution. None otherwise (an installed package inside some other
    repository must not record that repository's commit)."""
    top = _git("rev-parse", "--show-toplevel", cwd=package_dir)
    if top is None or Path(top).resolve() / "repro" != package_dir.resolve():
        return None
    try:
        name = tomllib.loads((Path(top) / "pyproject.toml").read_text())["project"]["name"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None
    return Path(top) if name == DISTRIBUTION else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else the platform's word for it): numbers differ by CPU kind."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def run_record(**extra: Any) -> dict[str, Any]:
    """Provenance (docs/method.md#reporting-protocol-and-memory-diagnostics): git commit and dirty flag, versions,
    platform, host, time; plus `extra`."""
    repository = project_repository()
    commit = _git("rev-parse", "HEAD", cwd=repository) if repository else None
    dirty = _git("status", "--porcelain", cwd=repository) if commit else None
    record = {
        "repro_version": __version__,
        "git_commit": commit,
        "git_dirty": None if dirty is None else bool(dirty),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sklearn": _version("scikit-learn"),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "time": _now(),
    }
    return record | extra


# ---------------------------------------------------------------------------------------------- store
class RunStore:
    """Run folders under `root`, named by config hash. Per-run operations take the run's folder."""

    def __init__(self, root: Path = Path("runs")) -> None:
        self.root = Path(root)

    def run_dir(self, cfg: RunConfig) -> Path:
        return self.root / config_hash(cfg)

    def prepare(self, cfg: RunConfig) -> Path:
        """The run's folder with config.toml (kept if present: it records how the run first executed) and a status."""
        run = self.run_dir(cfg)
        if not (run / "config.toml").exists():
            atomic_write(run / "config.toml", to_toml(cfg))
        if not (run / "status.json").exists():
            set_status(run, "pending")
        return run

    def is_done(self, cfg: RunConfig) -> bool:
        return is_finished(self.run_dir(cfg))


def finished_runs(paths: list[Path], hint: str = "give run folders or a run store") -> list[Path]:
    """The run folders that `paths` name: a run folder (it has config.toml) is itself, a run store gives its
    finished runs. A FileNotFoundError, ending with `hint`, when none is found."""
    folders = []
    for path in map(Path, paths):
        is_run = (path / "config.toml").is_file()
        folders += [path] if is_run else [path / name for name, _, state in list_runs(path) if state == "done"]
    if not folders:
        raise FileNotFoundError(f"no finished runs in {', '.join(map(str, paths))}; {hint}")
    return folders


def list_runs(root: Path = Path("runs")) -> list[tuple[str, RunConfig, str]]:
    """(hash, config, state) of every run under `root`; a folder with a bad config.toml is skipped with a warning."""
    runs = []
    for config in sorted(Path(root).glob("*/config.toml")):
        try:
            runs.append((config.parent.name, load_config(config), status(config.parent)["state"]))
        except (ConfigError, RunError) as error:
            warnings.warn(f"{config.parent}: skipped ({error})", stacklevel=2)
    return runs


class TrainingIndex:
    """The run folders of a store by training identity (repro.config.training_identity), so that finding a
    finished run to adopt checkpoints from does not load every config.toml of the store for every run.

    Built on first use and kept current: each lookup lists the store's folders and loads the config.toml of
    the folders it has not seen (a folder's config is fixed: the folder is named by its hash), and reads the
    state of the candidates only, so runs that finish, appear or vanish between lookups are seen.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._identities: dict[str, str | None] = {}  # folder name -> training identity (None: bad config.toml)
        self._folders: dict[str, set[str]] = {}  # training identity -> folder names

    def _refresh(self) -> None:
        try:
            with os.scandir(self.root) as entries:
                names = {entry.name for entry in entries if entry.is_dir()}
        except FileNotFoundError:
            names = set()
        for gone in self._identities.keys() - names:
            self._folders.get(self._identities.pop(gone), set()).discard(gone)
        for name in sorted(names - self._identities.keys()):
            config = self.root / name / "config.toml"
            if not config.exists():
                continue  # being prepared: seen by a later lookup
            try:
                identity = training_identity(load_config(config))
            except ConfigError as error:
                warnings.warn(f"{config.parent}: skipped ({error})", stacklevel=3)
                identity = None
            self._identities[name] = identity
            self._folders.setdefault(identity, set()).add(name)

    def finished(self, identity: str) -> list[Path]:
        """The folders of runs with this training identity whose state is done, by name (list_runs' order)."""
        self._refresh()
        found = []
        for name in sorted(self._folders.get(identity, ())):
            try:
                if status(self.root / name)["state"] == "done":
                    found.append(self.root / name)
            except RunError as error:
                warnings.warn(f"{self.root / name}: skipped ({error})", stacklevel=2)
        return found


_INDEXES: dict[Path, TrainingIndex] = {}


def training_index(root: Path) -> TrainingIndex:
    """The process's TrainingIndex of the store at `root` (one per store, shared by every run this process
    executes)."""
    key = Path(root).resolve()
    return _INDEXES.setdefault(key, TrainingIndex(key))
