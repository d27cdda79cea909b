"""The package stands alone: its sdist and its wheel, each installed into a fresh virtualenv outside the checkout,
run `repro --help` and train from an empty folder with the profiles, table declarations and published labels they
carry (nothing read from the repository); the sdist carries what its own tests need, and they pass from it."""

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[1]
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "runs", "reports", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"
)
SDIST_HOLDS = (
    "LICENSE",
    "CITATION.cff",
    "Makefile",
    "README.md",
    "tests/conftest.py",
    "tests/fakes.py",
    "tests/data/conftest.py",
    "docs/method.md",
    "docs/figures/timeline-pred-single.png",
    "ablations/table5.toml",
    "ablations/profiles/paper.toml",
    "repro/data/published/README.md",
)


def run(command, cwd, env=None):
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def outside_env(base: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"REPRO_CACHE": str(base / "cache")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sdist, and the wheel built from the sdist (so the sdist alone must be enough to build it)."""
    base = tmp_path_factory.mktemp("dist")
    shutil.copytree(REPOSITORY, base / "source", ignore=NOT_SOURCE)
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", base / "dist", base / "source"], cwd=base)
    (sdist,) = (base / "dist").glob("mnad_repro-*.tar.gz")
    (wheel,) = (base / "dist").glob("mnad_repro-*.whl")
    return sdist, wheel


def fresh_venv(base: Path, package: Path) -> Path:
    """A virtualenv outside the checkout with `package` installed; the dependencies (torch, ...) are this
    environment's, reached through a .pth line appended after its own site-packages, so nothing is downloaded."""
    venv.create(base / "venv", with_pip=False)
    python = base / "venv" / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q"]
    run([*install, "--no-build-isolation", package], cwd=base, env=outside_env(base))  # an sdist builds here
    return base / "venv"


@pytest.fixture(scope="module", params=["sdist", "wheel"])
def installed(request, built, tmp_path_factory):
    base = tmp_path_factory.mktemp(request.param)
    return base, fresh_venv(base, built[request.param == "wheel"])


def test_the_sdist_holds_the_tests_docs_and_makefile_and_the_wheel_the_licence_and_label_notice(built):
    sdist, wheel = built
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    assert set(SDIST_HOLDS) <= names, sorted(set(SDIST_HOLDS) - names)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"repro/data/published/README.md", "mnad_repro-0.1.0.dist-info/licenses/LICENSE"} <= names
    assert not any(name.startswith("tests/") for name in names)


def test_installed_package_trains_from_an_empty_folder(installed):
    base, env_dir = installed
    python, repro = (env_dir / "bin" / name for name in ("python", "repro"))
    empty = base / "empty"
    empty.mkdir()
    env = outside_env(base)
    where = run([python, "-c", "import repro; print(repro.__file__, repro.__version__)"], cwd=empty, env=env).split()
    assert where[0].startswith(str(env_dir)) and where[1] == "0.1.0", where  # the installed copy, not the checkout
    assert "Usage: repro" in run([repro, "--help"], cwd=empty, env=env)
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
    record = run([python, "-c", f"import json; print(json.load(open('{run_dir}/metrics.json'))['record'])"], empty)
    assert "'repro_version': '0.1.0'" in record and "'git_commit': None" in record  # not inside this repository


def test_the_sdists_tests_run_from_it(built, tmp_path):
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.iterdir()
    env_dir = fresh_venv(tmp_path, sdist)
    out = run(
        [env_dir / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_atomic.py"],
        cwd=unpacked,
        env=outside_env(tmp_path),
    )
    assert " passed" in out and "failed" not in out, out
