"""Claims: metrics, refused declarations, a killed claims run, the report's links (verdicts: test_claims_plan.py)."""

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import metrics_record

from repro.claims import CLAIM_METRICS, ClaimError, claim_runs, judge, load_claims
from repro.cli import main
from repro.grids import load_table, table_grid
from repro.report.folder import ReportWarning
from repro.runs import RunStore, list_runs, read_metrics, write_metrics

# ------------------------------------------------------------------------------------------ declarations
# One thread per run: a shared machine's other processes make torch's threads wait on each other (exec is not in
# a run's hash).
TINY = ["data.size=32", "model.mnad.width=4", "train.epochs=1", "train.checkpoint_every=1", "exec.threads=1"]


def claims_file(path: Path, claims: str) -> Path:
    path.write_text('[plan]\nlooks = [3]\n[stand_ins]\nped2 = "tiny"\n' + claims)
    return path


def two_arm(claim_id: str, control: str, treatment: str, change: str = '"model.mnad.memory"', extra: str = "") -> str:
    return f"""
[[claim]]
id = "{claim_id}"
source = "test"
quote = "the source's own words"
size_from = "the rows that isolate it"
statement = "memory helps"
dataset = "ped2"
metric = "auc"
direction = "higher"
change = [{change}]
control = [{control}]
treatment = [{treatment}]
{extra}
"""


def test_metrics_read_their_numbers_from_a_runs_metrics_json(tmp_path):
    scores = {"raw_auc": 0.5, "macro_auc": 0.5, "aupr": 0.5, "eer": 0.5, "epoch": 2, "lambda": 0.6}
    default = {
        **scores,
        "auc": 0.8125,
        "per_type": {"spatial": 0.5, "temporal": 0.75, "spatio_temporal": 1.0},
        "memory": {"counts": [3, 1], "perplexity": 7.5, "frame_perplexity": 2.25},
    }
    write_metrics(tmp_path, metrics_record(default, {**scores, "auc": 0.875}))
    read = {name: CLAIM_METRICS[name].read(tmp_path) for name in CLAIM_METRICS if not name.startswith("probe_")}
    assert read == pytest.approx(
        {
            "auc": 81.25,
            "auc_spatial": 50.0,
            "auc_temporal": 75.0,
            "auc_spatio_temporal": 100.0,
            "perplexity": 7.5,
            "frame_perplexity": 2.25,
            "oracle_gain": 6.25,
        }
    )


def test_the_shipped_claims_expand_to_shared_runs():
    claims = load_claims(Path(__file__).parents[1] / "ablations" / "claims.toml")
    runs = claim_runs(claims, "synthetic", None, ("train.epochs=4", "train.checkpoint_every=2"))
    store = RunStore(Path("unused"))
    assert len(claims) >= 35 and all(claim.plan.looks[0] >= 3 and claim.quote for claim in claims)
    assert len({store.run_dir(run.config) for run in runs}) == 135  # claims share runs: 285 (claim, arm, seed)
    ablation_runs = {store.run_dir(r.config) for r in runs if r.labels["claim"] == "separateness-helps-prediction"}
    memory_runs = {store.run_dir(r.config) for r in runs if r.labels["claim"] == "memory-helps-prediction"}
    assert len(ablation_runs & memory_runs) == 3  # pred with memory, seeds 0-2, in both


def test_the_shipped_claims_resolve_on_real_data_at_the_papers_schedules(tmp_path):
    claims = load_claims(Path(__file__).parents[1] / "ablations" / "claims.toml")
    runs = claim_runs(claims, "paper", str(tmp_path), ("train.epochs=4",))  # QUICK-like --set, as a user might
    by_claim = {}
    for run in runs:
        by_claim.setdefault(run.labels["claim"], []).append(run.config)
    assert {cfg.data.name for cfg in by_claim["memory-helps-prediction"]} == {"ped2"}
    assert {cfg.train.epochs for cfg in by_claim["memory-helps-prediction"]} == {4}  # --set applies...
    assert {cfg.train.epochs for cfg in by_claim["memae-memory-helps"]} == {100}  # ...but not to keep_profile keys


def test_claims_share_the_runs_of_the_memory_study_and_the_baselines():
    """The prediction arms on `cameras` are Table 8's rows with its schedule (Makefile MEMORY_STUDY), and the MemAE
    arms are the baselines' rows with the profile's MemAE/AE settings: the claims target reuses those targets'
    seed-0 runs, whatever its own schedule (QUICK); its other seeds draw their own worlds (world = "per-seed")."""
    shipped = Path(__file__).parents[1] / "ablations"
    store = RunStore(Path("unused"))
    runs = claim_runs(
        load_claims(shipped / "claims.toml"), "synthetic", None, ("train.epochs=4", "train.checkpoint_every=2")
    )
    memory_study = ("train.epochs=4", "train.checkpoint_every=4")
    table8 = table_grid(load_table(shipped / "table8.toml"), "synthetic", 3, overrides=memory_study)
    baselines = table_grid(load_table(shipped / "baselines.toml"), "synthetic", 3)
    shared = {
        "memory-collapses-on-multi-camera-data": table8,
        "uniform-target-alone-prevents-collapse": table8,
        "uniform-supervision-raises-prediction-auc": table8,
        "memae-memory-helps": baselines,
    }
    for claim, grid in shared.items():
        dirs = {store.run_dir(run.config) for run in runs if run.labels["claim"] == claim}
        first = {store.run_dir(run.config) for run in runs if run.labels["claim"] == claim and run.seed == 0}
        assert len(dirs) >= 3 and first <= {store.run_dir(run.config) for run in grid} and first, claim
        assert not (dirs - first) & {store.run_dir(run.config) for run in grid}, claim


@pytest.mark.parametrize(
    "claim, message",
    [
        (two_arm("typo-key", '"model.memroy=false"', '"model.mnad.memory=true"'), ["'typo-key'", "model.memroy"]),
        (
            two_arm("extra-difference", '"model.mnad.memory=false"', '"model.mnad.memory=true", "train.lr=1e-3"'),
            ["'extra-difference'", "train.lr", "beyond the declared change"],
        ),
        (
            two_arm("no-difference", '"model.mnad.memory=true"', '"model.mnad.memory=true"'),
            ["'no-difference'", "do not differ in model.mnad.memory"],
        ),
        (
            two_arm("unknown-change", '"model.mnad.memory=false"', '"model.mnad.memory=true"', '"model.memroy"'),
            ["'unknown-change'", "model.memroy"],
        ),
        (
            two_arm("field-typo", '"model.mnad.memory=false"', '"model.mnad.memory=true"', extra="sise = 2.0"),
            ["'field-typo'", "sise"],
        ),
        (
            two_arm("few-seeds", '"model.mnad.memory=false"', '"model.mnad.memory=true"', extra="looks = [2]"),
            ["'few-seeds'", "at least 3"],
        ),
    ],
)
def test_a_bad_claim_is_refused_with_its_name(tmp_path, claim, message):
    path = claims_file(tmp_path / "claims.toml", claim)
    with pytest.raises(ClaimError) as error:
        claim_runs(load_claims(path), "synthetic", None, ())
    assert all(part in str(error.value) for part in message), str(error.value)


def test_a_change_of_task_carries_the_tasks_own_settings(tmp_path):
    claim = two_arm("task", '"model.mnad.task=recon"', '"model.mnad.task=pred"', '"model.mnad.task"')
    runs = claim_runs(load_claims(claims_file(tmp_path / "c.toml", claim)), "synthetic", None, ())
    control, treatment = runs[0].config, runs[3].config
    assert (control.eval.mnad.lambda_score, treatment.eval.mnad.lambda_score) == (0.7, 0.6)  # the profile's per-task λ


def test_the_arms_win_over_the_global_overrides(tmp_path):
    claim = two_arm(
        "epochs", '"model.mnad.memory=false", "train.epochs=1"', '"model.mnad.memory=true", "train.epochs=1"'
    )
    runs = claim_runs(load_claims(claims_file(tmp_path / "c.toml", claim)), "synthetic", None, ("train.epochs=4",))
    assert {run.config.train.epochs for run in runs} == {1} and [run.seed for run in runs[:3]] == [0, 1, 2]


def test_keep_profile_keys_take_each_methods_profile_value_instead_of_the_global_overrides(tmp_path):
    claim = two_arm(
        "schedule", '"model.name=ae3d"', '"model.name=memae"', '"model.name"', extra='keep_profile = ["train.epochs"]'
    )
    claims = load_claims(claims_file(tmp_path / "c.toml", claim))
    runs = claim_runs(claims, "synthetic", None, ("train.epochs=4", "train.lr=1e-3"))
    # the synthetic profile's [method.ae3d.train] and [method.memae.train] say 3 epochs; --set still sets the rest
    assert {(run.config.train.epochs, run.config.train.lr) for run in runs} == {(3, 1e-3)}


@pytest.mark.parametrize(
    "keep, message", [('["train.epoch"]', "unknown key(s) train.epoch"), ('["train.epochs=3"]', "not overrides")]
)
def test_a_bad_keep_profile_is_refused_with_the_claims_name(tmp_path, keep, message):
    claim = two_arm("keep", '"model.mnad.memory=false"', '"model.mnad.memory=true"', extra=f"keep_profile = {keep}")
    with pytest.raises(ClaimError) as error:
        claim_runs(load_claims(claims_file(tmp_path / "c.toml", claim)), "synthetic", None, ())
    assert "'keep'" in str(error.value) and message in str(error.value), str(error.value)


def test_the_cli_refuses_a_bad_claim_before_training(tmp_path):
    path = claims_file(
        tmp_path / "c.toml", two_arm("bad", '"model.mnad.memory=false"', '"model.mnad.memory=true", "seed=5"')
    )
    result = CliRunner().invoke(main, ["claims", str(path), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "claim 'bad'" in result.output and "seed" in result.output
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------------------- end to end
# Three trainings (the control arm re-scores the treatment's checkpoints without the update), three claims.
TINY_CLAIMS = (
    two_arm(
        "update-helps",
        '"eval.mnad.test_time_update=false"',
        '"eval.mnad.test_time_update=true"',
        '"eval.mnad.test_time_update"',
        extra='figure = "timeline"',
    )
    + """
[[claim]]
id = "skips-bypass"
source = "test"
quote = "the source's own words"
size_from = "the rows that isolate it"
statement = "zeroing the bottleneck barely changes the prediction"
dataset = "ped2"
metric = "probe_psnr_change"
direction = "equal"
size = 1.0
arm = ["eval.mnad.test_time_update=true"]
threshold = 0.0
figure = "probe"

[[claim]]
id = "oracle-inflates"
source = "test"
quote = "the source's own words"
size_from = "the rows that isolate it"
statement = "the oracle is higher"
dataset = "ped2"
metric = "oracle_gain"
direction = "higher"
arm = ["eval.mnad.test_time_update=true"]
threshold = 0.0
figure = "memory"
"""
)


@pytest.mark.slow
def test_a_killed_claims_run_finishes_only_what_is_left_and_links_only_files_that_exist(tmp_path):
    path, runs, out = claims_file(tmp_path / "claims.toml", TINY_CLAIMS), tmp_path / "runs", tmp_path / "report"
    settings = [f"data.root={tmp_path / 'synthetic'}", *TINY]

    def arguments(report: Path) -> list[str]:
        sets = [a for setting in settings for a in ("--set", setting)]
        return [str(a) for a in ["claims", path, "--runs", runs, "--out", report, "--jobs", 1, *sets]]

    args = arguments(out)
    command = [sys.executable, "-c", "from repro.cli import main; main()", *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600  # the loop ends at the first finished run; a loaded machine may take minutes
    while time.time() < deadline and not any(state == "done" for _, _, state in list_runs(runs)):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = {
        name: (runs / name / "metrics.json").stat().st_mtime_ns for name, _, state in list_runs(runs) if state == "done"
    }
    assert finished and len(finished) < 6, "the kill came too late to interrupt the claims run"

    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(list_runs(runs)) == 6 and all(state == "done" for _, _, state in list_runs(runs))  # 2 arms x 3 seeds
    for name, mtime in finished.items():
        assert (runs / name / "metrics.json").stat().st_mtime_ns == mtime  # not recomputed

    rows = {row["id"]: row for row in csv.DictReader((out / "claims.csv").open())}
    assert (out / "claims.md").read_text().splitlines()[0].startswith("# 3 claims (3 primary, 0 exploratory): ")
    assert {row["n"] for row in rows.values()} == {"3"} and all(row["verdict"] for row in rows.values())
    claims = load_claims(path)
    grid = claim_runs(claims, "synthetic", None, tuple(settings))
    store = RunStore(runs)
    arm_runs = {
        arm: [store.run_dir(r.config) for r in grid if r.labels == {"claim": "update-helps", "arm": arm}]
        for arm in ("control", "treatment")
    }
    treatment = [100 * read_metrics(run)["default"]["auc"] for run in arm_runs["treatment"]]
    assert [float(v) for v in rows["update-helps"]["treatment values"].split(";")] == pytest.approx(treatment)
    results = {result.claim.id: result for result in judge(claims, grid, store)}
    assert results["oracle-inflates"].look.effect >= 0  # the oracle includes the default: never below it
    assert all(np.isfinite(results["skips-bypass"].values["arm"]))
    _assert_links_exist(out)
    html = (out / "index.html").read_text()
    assert {
        "figures/update-helps/control/timeline.png",
        "figures/update-helps/treatment/timeline.png",
        "figures/oracle-inflates/arm/memory.png",
        "figures/skips-bypass/arm/probe.png",
    } <= set(re.findall(r'src="([^"]+)"', html))

    written = (out / "claims.md").read_text()
    from_manifest = CliRunner().invoke(main, ["report", str(out)], catch_exceptions=False)  # reads manifest.json
    assert from_manifest.exit_code == 0 and (out / "claims.md").read_text() == written

    # a figure whose run lost its signals is not made, and not linked (the old file goes with a fresh report)
    shutil.rmtree(arm_runs["control"][0] / "signals")
    again = tmp_path / "again"
    with pytest.warns(ReportWarning, match="no timeline figure"):
        result = CliRunner().invoke(main, arguments(again), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    _assert_links_exist(again)
    html = (again / "index.html").read_text()
    assert "figures/update-helps/control" not in html and "figures/update-helps/treatment/timeline.png" in html


def _assert_links_exist(out: Path) -> None:
    html = (out / "index.html").read_text()
    markdown = (out / "claims.md").read_text()
    targets = re.findall(r'(?:href|src)=["\']([^"\']+)["\']', html) + re.findall(r"\]\(([^)]+)\)", markdown)
    assert targets
    for target in targets:
        assert (out / target).is_file(), f"the report links {target}, which does not exist"


@pytest.mark.slow
def test_replicate_runs_the_plan_on_disjoint_seeds_and_prints_the_agreement_first(tmp_path):
    claim = two_arm(
        "update-helps",
        '"eval.mnad.test_time_update=false"',
        '"eval.mnad.test_time_update=true"',
        '"eval.mnad.test_time_update"',
    )
    path, runs, out = claims_file(tmp_path / "claims.toml", claim), tmp_path / "runs", tmp_path / "replication"
    sets = [a for s in [f"data.root={tmp_path / 'synthetic'}", *TINY] for a in ("--set", s)]
    args = ["claims", str(path), "--replicate", "--runs", str(runs), "--out", str(out), "--jobs", "1", *sets]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    printed = result.output[result.output.index("# ") :]  # after the progress bars (stderr, unterminated)
    assert re.match(r"# Agreement [01] of 1 claims \([0-9]+%\) between two disjoint seed sets\n", printed)
    seeds = {config.seed for _, config, _ in list_runs(runs)}
    assert seeds == {0, 1, 2, 1000, 1001, 1002}  # the control re-scores the treatment's checkpoints: 6 trainings
    (row,) = csv.DictReader((out / "replication.csv").open())
    assert row["id"] == "update-helps" and row["agree"] in ("True", "False") and row["replication"]
    (replicated,) = csv.DictReader((out / "claims.csv").open())
    assert replicated["seeds"] == "1000;1001;1002"
