"""The package stands alone: its wheel, installed into a fresh virtualenv, trains from an empty folder with the
profiles, table declarations and published labels it carries (nothing read from the repository)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[1]
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "runs", "reports", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"
)


def run(command, cwd, env=None):
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtualenv with the wheel built from a copy of the sources; the dependencies (torch, ...) are this
    environment's, reached through a .pth line, so no download is needed."""
    base = tmp_path_factory.mktemp("wheel")
    shutil.copytree(REPOSITORY, base / "source", ignore=NOT_SOURCE)
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", base / "dist"], cwd=base / "source")
    (wheel,) = (base / "dist").glob("repro-*.whl")
    venv.create(base / "venv", with_pip=False)
    python = base / "venv" / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # appended after site-packages
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], cwd=base)
    return base


def test_the_wheel_trains_from_an_empty_folder(installed):
    python, repro = (installed / "venv" / "bin" / name for name in ("python", "repro"))
    empty = installed / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"REPRO_CACHE": str(installed / "cache")}
    where = run([python, "-c", "import repro; print(repro.__file__)"], cwd=empty, env=env)
    assert where.startswith(str(installed / "venv")), where  # the wheel, not the repository
    shipped = (
        "from repro.grids import load_table; from repro.config import load_config; "
        "from repro.data.labels import load_flat_labels, published_label_file as f; "
        "print(load_table('table5').name, load_config('paper').data.size, "
        "sum(len(load_flat_labels(f(n))) for n in ('ped2', 'avenue', 'shanghaitech')))"
    )
    assert run([python, "-c", shipped], cwd=empty, env=env).split() == ["table5", "256", str(2010 + 15324 + 40791)]
    tiny = [
        "data.preset=tiny",
        "data.size=32",
        "model.mnad.width=4",
        "train.epochs=1",
        "train.checkpoint_every=1",
        "exec.threads=1",
    ]
    out = run([repro, "train", *(x for s in tiny for x in ("--set", s))], cwd=empty, env=env)
    (run_dir,) = (empty / "runs").iterdir()
    assert f"run: runs/{run_dir.name}" in out and (run_dir / "metrics.json").is_file()
