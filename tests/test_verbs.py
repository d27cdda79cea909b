"""The library calls of the verbs, and the manifest: a sweep through `sweep(...)` equals the CLI's; a report from
a manifest equals the report from the declaration and the flags; the judge and the report never hash again."""

import json

import pytest
from click.testing import CliRunner

from repro import config, runs
from repro.cli import main
from repro.config import config_hash, load_config
from repro.grids import load_table, placed, table_grid
from repro.manifest import read_manifest
from repro.pipeline import rescore
from repro.runs import RunStore, read_metrics
from repro.variants import variant
from repro.verbs import ablate, sweep

pytestmark = pytest.mark.slow

TABLE = """
name = "tiny"
question = "Does the tiny table report?"
datasets = ["ped2"]
[stand_ins]
ped2 = "tiny"
[models]
"Pred w/ Mem" = ["model.mnad.task=pred"]
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One tiny table swept through the library call: (declaration, settings, store, report folder, result)."""
    root = tmp_path_factory.mktemp("verbs")
    declaration = root / "tiny.toml"
    declaration.write_text(TABLE)
    settings = (
        f"data.root={root / 'synthetic'}",
        "data.size=32",
        "model.mnad.width=4",
        "train.epochs=1",
        "train.checkpoint_every=1",
    )
    result = sweep(declaration, seeds=2, runs=root / "runs", out=root / "library", settings=settings, jobs=1)
    return declaration, settings, root / "runs", root / "library", result


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_the_library_sweep_equals_the_cli_sweep(swept, tmp_path):
    declaration, settings, store, library, result = swept
    assert not result.failures and result.paths["md"] == library / "tiny.md"
    sets = [arg for override in settings for arg in ("--set", override)]
    command = cli("sweep", declaration, "--seeds", 2, "--runs", store, "--out", tmp_path, *sets)
    assert command.exit_code == 0, command.output
    assert (tmp_path / "tiny.md").read_text() == result.paths["md"].read_text()
    assert (tmp_path / "tiny.csv").read_text() == (library / "tiny.csv").read_text()


def test_the_manifest_names_each_run_its_folder_and_config(swept):
    declaration, settings, store, library, _ = swept
    record = json.loads((library / "manifest.json").read_text())
    assert record["kind"] == "sweep" and record["command"]["seeds"] == 2
    assert record["command"]["settings"] == list(settings) and record["declaration"]["name"] == "tiny"
    manifest = read_manifest(library)
    grid = table_grid(load_table(declaration), "synthetic", 2, None, settings)
    assert [(r.labels, r.seed, r.config) for r in manifest.runs] == [(r.labels, r.seed, r.config) for r in grid]
    for run, entry in zip(manifest.runs, record["runs"]):
        assert run.folder == store.resolve() / config_hash(run.config) and entry["config_hash"] == run.folder.name


def test_a_report_from_the_manifest_equals_the_report_from_the_declaration_and_flags(swept, tmp_path, monkeypatch):
    declaration, settings, store, library, _ = swept
    sets = [arg for override in settings for arg in ("--set", override)]
    by_flags = cli("report", declaration, "--seeds", 2, "--runs", store, "--out", tmp_path, *sets)
    assert by_flags.exit_code == 0, by_flags.output

    def no_hashing(cfg):
        raise AssertionError("a manifest's runs are not hashed again")

    monkeypatch.setattr(runs, "config_hash", no_hashing)
    monkeypatch.setattr(config, "config_hash", no_hashing)
    by_manifest = cli("report", library)  # no --profile, --seeds, --set: the manifest says them
    assert by_manifest.exit_code == 0, by_manifest.output
    for name in ("index.md", "index.html", "tiny.md", "tiny.csv", "tiny.tex"):
        assert (library / name).read_text() == (tmp_path / name).read_text(), name


def test_rescore_writes_a_run_of_its_own_beside_the_source(swept):
    *_, library, _ = swept
    source = read_manifest(library).runs[0].folder
    result = rescore(source, ["eval.mnad.test_time_update=false"])
    assert result.folder.parent == source.parent and result.folder != source
    assert not load_config(result.folder / "config.toml").eval.mnad.test_time_update
    assert result.metrics == read_metrics(result.folder)["default"]
    with pytest.raises(ValueError, match="only eval"):
        rescore(source, ["train.epochs=3"])


def test_placing_a_grid_derives_each_folder_once(swept):
    declaration, settings, store, *_ = swept
    grid = placed(table_grid(load_table(declaration), "synthetic", 2, None, settings), RunStore(store))
    assert [run.folder for run in grid] == [RunStore(store).run_dir(run.config) for run in grid]


def test_memae_threshold_is_k_over_the_variants_memory_size():
    base = ("model.name=memae",)
    name, changes = variant("synthetic", base, {"shrink-threshold": 5.0, "memory-size": 100})
    assert name == "memory-size-100+shrink-5-over-n"
    assert changes == ("model.memae.num_items=100", "model.memae.shrink_threshold=0.05")
    items = load_config("synthetic", base).model.memae.num_items
    assert variant("synthetic", base, {"shrink-threshold": 5.0})[1] == (f"model.memae.shrink_threshold={5.0 / items}",)


def test_two_options_on_one_key_are_refused():
    with pytest.raises(ValueError, match="--skip and --no-skip both set model.mnad.skips"):
        variant("synthetic", (), {"skip": True, "no-skip": True})


def test_a_variant_reads_its_options_from_the_methods():
    name, changes = variant("synthetic", (), {"no-separateness": True, "salt-pepper": 0.25}, extra=("seed=3",))
    assert name == "no-separateness+salt-pepper-0.25+seed-3"
    assert changes == ("model.mnad.separateness=0", "data.salt_pepper=0.25", "seed=3")


def test_report_defaults_to_the_report_folder_it_is_given(swept):
    *_, library, _ = swept
    result = cli("report", library)
    assert f"written: {library / 'index.md'}" in result.output


def test_an_ablation_writes_a_manifest_that_report_reads(swept, tmp_path):
    _, settings, store, *_ = swept
    base = ("data.name=synthetic", "data.preset=tiny", *settings)
    result = ablate({"no-separateness": True}, profile="synthetic", base=base, seeds=1, runs=store, out=tmp_path)
    assert not result.failures and result.paths["manifest"] == tmp_path / "manifest.json"
    manifest = read_manifest(tmp_path)
    assert manifest.kind == "ablate" and [r.labels["variant"] for r in manifest.runs] == ["baseline", "no-separateness"]
    comparison = (tmp_path / "comparison.md").read_text()
    assert cli("report", tmp_path).exit_code == 0
    assert (tmp_path / "comparison.md").read_text() == comparison and "no-separateness" in comparison
    assert "ablate: no-separateness" in (tmp_path / "index.md").read_text()
