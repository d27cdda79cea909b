"""The command line's vocabulary: each shared option the same in every verb, help without torch, choices."""

import subprocess
import sys
from typing import get_args

import click
import pytest
from click.testing import CliRunner

from repro import __version__
from repro.cli import main
from repro.cli.options import DEVICES, EXECUTORS, PRECISIONS
from repro.config import ExecConfig
from repro.executors import EXECUTORS as RUN_EXECUTORS
from repro.grids import shipped_tables
from repro.settings import hints

SHARED = (
    "--profile",
    "--data",
    "--dataset",
    "--set",
    "--runs",
    "--device",
    "--precision",
    "--jobs",
    "--executor",
    "--address",
    "--out",
    "--seeds",
    "--model",
    "--task",
    "--lambda",
)


def commands(group: click.Group = main, prefix: str = "") -> dict[str, click.Command]:
    """Every verb by its full name ("train", "data check", ...)."""
    found = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= commands(command, f"{prefix}{name} ")
        else:
            found[prefix + name] = command
    return found


def spec(param: click.Parameter) -> dict:
    """What a user sees of an option: its names, type, default and help."""
    info = param.to_info_dict()
    return {key: info[key] for key in ("opts", "name", "type", "default", "help", "multiple", "is_flag")}


def test_each_shared_option_is_the_same_in_every_verb():
    verbs = commands()
    for option in SHARED:
        specs = {}
        for verb, command in verbs.items():
            for param in command.get_params(click.Context(command)):
                if option in getattr(param, "opts", []):
                    specs[verb] = spec(param)
        assert len(specs) >= 2, f"{option} is taken by {list(specs)} only"
        first = next(iter(specs.values()))
        assert all(s == first for s in specs.values()), f"{option} differs between {list(specs)}"


def test_a_run_making_verb_takes_model_and_device():
    verbs = commands()
    for verb in ("train", "ablate", "bench"):
        names = {p.name for p in verbs[verb].get_params(click.Context(verbs[verb]))}
        assert {"model", "device"} <= names, verb
    for verb in ("sweep", "claims"):  # their declarations name each row's model
        assert "device" in {p.name for p in verbs[verb].get_params(click.Context(verbs[verb]))}


def test_choices_match_the_config():
    assert DEVICES == get_args(hints(ExecConfig)["device"])
    assert PRECISIONS == get_args(hints(ExecConfig)["precision"])
    assert EXECUTORS == RUN_EXECUTORS


def test_help_of_every_verb_imports_no_torch_numpy_or_pandas():
    verbs = [name.split() for name in commands()]
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom repro.cli import main\n"
        f"for verb in [[], *{verbs!r}]:\n"
        "    assert CliRunner().invoke(main, [*verb, '--help']).exit_code == 0, verb\n"
        "print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_an_unknown_method_lists_the_registered_ones():
    result = CliRunner().invoke(main, ["train", "--model", "mnda"])
    assert result.exit_code == 2 and "'mnad'" in result.output and "'convlstm'" in result.output


def test_version_is_the_package_version():
    assert __version__ in CliRunner().invoke(main, ["--version"]).output


def test_sweep_offers_only_table_declarations():
    assert "claims" not in shipped_tables() and "table5" in shipped_tables()
    result = CliRunner().invoke(main, ["sweep", "tabel5"])
    assert result.exit_code == 2 and "did you mean 'table5'" in result.output and "claims" not in result.output


@pytest.mark.parametrize("verb", ["sweep", "claims", "ablate"])
def test_grid_verbs_name_the_ray_install_by_the_distribution_name(verb):
    text = CliRunner().invoke(main, [verb, "--help"], terminal_width=200).output
    assert "pip install 'mnad-repro[ray]'" in text


def test_ablate_help_lists_the_registered_methods_options_without_torch():
    """The torch-free declarations stand for the registry: the same options as the registry's methods declare."""
    from repro.models.registry import METHODS
    from repro.models.variant_flags import BUILTIN_VARIANT_FLAGS

    assert {name: method.variant_flags for name, method in METHODS.items() if method.variant_flags} == (
        BUILTIN_VARIANT_FLAGS
    )
    text = CliRunner().invoke(main, ["ablate", "--help"]).output
    for flags in BUILTIN_VARIANT_FLAGS.values():
        assert all(f"--{flag.option}" in text for flag in flags)
