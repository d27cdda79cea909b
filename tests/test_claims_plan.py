"""The seed plan through the claims: staged runs with a fake executor on hand-made per-seed numbers (boundary at
stage 2, the cap, futility, a failed run), the family's adjustment in the report against statsmodels, the size
outcome, the registry's deviations and the replication's agreement."""

import csv
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import metrics_record
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from repro.claims import ClaimError, claim_runs, load_claims, register, run_plan
from repro.cli import main
from repro.grids import placed
from repro.report.claims import claims_report, replication_report
from repro.runs import RunStore, set_status, write_metrics

SCORES = {"raw_auc": 0.5, "macro_auc": 0.5, "aupr": 0.5, "eer": 0.5, "epoch": 1, "lambda": 0.6}
THRESHOLD = 50.0


def one_arm(claim_id: str, lr: str, extra: str = "") -> str:
    """A claim of the arm's AUC against 50; `lr` makes each claim's arm its own runs."""
    return f"""
[[claim]]
id = "{claim_id}"
source = "test"
quote = "the source's own words"
size_from = "the rows that isolate it"
statement = "{claim_id}"
dataset = "ped2"
metric = "auc"
direction = "higher"
arm = ["train.lr={lr}"]
threshold = {THRESHOLD}
{extra}
"""


def write_claims(path: Path, claims: str, looks: str = "[3, 5, 8]", adjustment: str = "holm") -> Path:
    plan = f'[plan]\nlooks = {looks}\nalpha = 0.05\nadjustment = "{adjustment}"\n'
    path.write_text(plan + '[stand_ins]\nped2 = "tiny"\n' + claims)
    return path


class FakeExecutor:
    """Finishes each run with AUC = 50 + differences[claim][seed - offset] (a fail set leaves runs failed) and
    counts the runs it was asked for."""

    def __init__(self, store: RunStore, differences: dict[str, list[float]], fail=(), offset: int = 0):
        self.store, self.differences, self.fail, self.offset = store, differences, set(fail), offset
        self.seeds: dict[str, set[int]] = {}

    def __call__(self, runs):
        runs, failures = placed(runs, self.store), {}
        for run in runs:
            claim, folder = run.labels["claim"], run.folder
            self.seeds.setdefault(claim, set()).add(run.seed - self.offset)
            folder.mkdir(parents=True, exist_ok=True)
            if (claim, run.seed - self.offset) in self.fail:
                set_status(folder, "failed", "boom")
                failures[folder.name] = "boom"
                continue
            d = self.differences[claim][run.seed - self.offset]
            default = {**SCORES, "auc": (THRESHOLD + d) / 100}  # an oracle gain of d, too
            write_metrics(folder, metrics_record(default, {**SCORES, "auc": (THRESHOLD + 2 * d) / 100}))
            set_status(folder, "done")
        return runs, failures


def staged(path: Path, store: RunStore, differences, fail=(), offset: int = 0):
    claims = load_claims(path)
    executor = FakeExecutor(store, differences, fail, offset)

    def expand(pending, seeds):
        return claim_runs(pending, "synthetic", None, (), seeds, offset)

    results, runs, failures = run_plan(claims, expand, executor, store)
    return {result.claim.id: result for result in results}, executor, failures


# --------------------------------------------------------------------------------------------- stages
def test_a_boundary_crossed_at_stage_2_stops_the_claim_there(tmp_path):
    # looks (3, 5, 8): nominal boundaries 0.0014, 0.0126, 0.0449
    d = [1.0, 1.5, 0.5, 1.2, 1.1, 0.0, 0.0, 0.0]  # n=3: t-test p 0.074; n=5: p 0.0027
    path = write_claims(tmp_path / "c.toml", one_arm("clear", "0.001"))
    results, executor, _ = staged(path, RunStore(tmp_path / "runs"), {"clear": d})
    result = results["clear"]
    assert (result.look.stop, result.stage, result.look.n) == ("boundary", 1, 5)
    assert executor.seeds["clear"] == {0, 1, 2, 3, 4}  # seeds 5-7 of the cap never ran
    assert result.look.p_value == pytest.approx(scipy_stats.ttest_1samp(d[:5], 0).pvalue)
    assert result.verdict == result.verdict_raw == "supported" and result.seeds == (0, 1, 2, 3, 4)


def test_an_unchanged_claim_at_the_cap_stays_inconclusive(tmp_path):
    d = [1.0, -1.0, 0.5, -0.5, 0.2, -0.3, 0.1, 0.0]
    path = write_claims(tmp_path / "c.toml", one_arm("noise", "0.001"))
    results, executor, _ = staged(path, RunStore(tmp_path / "runs"), {"noise": d})
    result = results["noise"]
    assert (result.look.stop, result.look.n, result.verdict) == ("cap", 8, "inconclusive")
    assert executor.seeds["noise"] == set(range(8))
    claims_report([result], tmp_path / "report")
    assert "Stopped: 1 at the cap undecided (noise)." in (tmp_path / "report" / "claims.md").read_text()
    assert result.detectable > abs(result.look.effect)  # the MDE says what n = 8 could have seen


def test_futility_stops_once_the_claimed_size_is_ruled_out(tmp_path):
    d = [0.1, -0.1, 0.05] + [0.0] * 5  # interval [-0.5, 0.6] at the first look: wholly below 5
    path = write_claims(tmp_path / "c.toml", one_arm("small", "0.001", "size = 5.0"))
    results, executor, _ = staged(path, RunStore(tmp_path / "runs"), {"small": d})
    result = results["small"]
    assert (result.look.stop, result.look.n, result.verdict) == ("futility", 3, "inconclusive")
    assert executor.seeds["small"] == {0, 1, 2} and result.size_outcome == "below"


def test_claims_sharing_an_arm_share_its_runs(tmp_path):
    claims = one_arm("a", "0.001") + one_arm("b", "0.001", "size = 50.0")  # b stops for futility at look 1
    path = write_claims(tmp_path / "c.toml", claims)
    store = RunStore(tmp_path / "runs")
    d = [1.0, -1.0, 0.5, -0.5, 0.2, -0.3, 0.1, 0.0]
    results, _, _ = staged(path, store, {"a": d, "b": d})
    assert results["b"].look.stop == "futility" and results["a"].look.stop == "cap"
    assert set(results["b"].runs["arm"]) <= set(results["a"].runs["arm"])  # the same folders
    assert len(list((tmp_path / "runs").iterdir())) == 8


def test_a_failed_run_leaves_the_claim_untested_and_names_it(tmp_path):
    path = write_claims(tmp_path / "c.toml", one_arm("broken", "0.001"))
    store = RunStore(tmp_path / "runs")
    results, _, failures = staged(path, store, {"broken": [5.0, 6.0, 7.0]}, fail={("broken", 2)})
    result = results["broken"]
    assert (result.look.stop, result.look.n, result.verdict, result.verdict_raw) == ("untested", 2, *["untested"] * 2)
    assert result.missing == tuple(failures) and len(failures) == 1
    assert np.isnan(result.look.p_value) and result.p_value == 1.0  # in the family as p = 1


def test_a_bounded_metric_is_decided_by_the_sign_test_at_five_positive_seeds(tmp_path):
    claim = one_arm("oracle", "0.001").replace('metric = "auc"', 'metric = "oracle_gain"')
    path = write_claims(tmp_path / "c.toml", claim.replace(f"threshold = {THRESHOLD}", "threshold = 0.0"), "[3, 5]")
    d = [0.5, 0.7, 0.2, 0.4, 0.3]  # 3 of 3 positive: p 0.125 > 0.0114; 5 of 5: p 0.031 <= 0.0457
    results, _, _ = staged(path, RunStore(tmp_path / "runs"), {"oracle": d})
    result = results["oracle"]
    assert (result.look.stop, result.look.n, result.verdict) == ("boundary", 5, "supported")
    assert result.look.p_value == pytest.approx(1 / 32)
    out = tmp_path / "report"
    claims_report([result], out)
    assert "5 of 5 seeds above, sign test" in (out / "claims.md").read_text()
    (row,) = csv.DictReader((out / "claims.csv").open())
    assert row["low"] == row["high"] == ""  # no t-interval on a bounded metric


# ----------------------------------------------------------------------------------------- the family
FAMILY = {  # single look: the stage-wise p-value is the t-test's
    "strong": [3.0, 3.1, 2.9],  # p 0.0004
    "middling": [1.0, 1.4, 0.8],  # p 0.026
    "weak": [1.0, 1.5, 0.7],  # p 0.045: Holm keeps only "strong", Benjamini-Hochberg all three
    "exploratory": [1.0, 1.4, 0.8],
}


@pytest.mark.parametrize("adjustment, method", [("holm", "holm"), ("bh", "fdr_bh")])
def test_the_reports_adjusted_p_values_are_statsmodels_multipletests(tmp_path, adjustment, method):
    lrs = {name: f"0.00{i + 1}" for i, name in enumerate(FAMILY)}
    claims = "".join(one_arm(name, lrs[name], "primary = false" if name == "exploratory" else "") for name in FAMILY)
    path = write_claims(tmp_path / "c.toml", claims, looks="[3]", adjustment=adjustment)
    results, _, _ = staged(path, RunStore(tmp_path / "runs"), FAMILY)
    primary = ["strong", "middling", "weak"]
    raw = [scipy_stats.ttest_1samp(FAMILY[name], 0).pvalue for name in primary]
    reject, adjusted, _, _ = multipletests(raw, alpha=0.05, method=method)
    assert [results[name].p_value for name in primary] == pytest.approx(raw, rel=1e-6)
    assert [results[name].p_adjusted for name in primary] == pytest.approx(adjusted, rel=1e-6)
    assert [results[name].verdict == "supported" for name in primary] == list(reject)
    exploratory = results["exploratory"]
    assert exploratory.p_adjusted == exploratory.p_value and exploratory.verdict == exploratory.verdict_raw

    out = tmp_path / "report"
    claims_report(list(results.values()), out, "test", register(load_claims(path), path, out))
    rows = {row["id"]: row for row in csv.DictReader((out / "claims.csv").open())}
    assert [float(rows[name]["p_adjusted"]) for name in primary] == pytest.approx(adjusted, rel=1e-6)
    first = (out / "claims.md").read_text().splitlines()[0]
    after = sum(reject) + 1  # the exploratory claim keeps its raw "supported"
    counted = f"{after} supported" + (f", {4 - after} inconclusive" if after < 4 else "")
    named = {"holm": "Holm", "bh": "Benjamini-Hochberg"}[adjustment]
    assert first == f"# 4 claims (3 primary, 1 exploratory): {counted} after {named}; 4 supported before"
    if adjustment == "holm":  # under Holm the two weaker ones lose their raw verdict
        assert rows["middling"]["verdict_raw"] == "supported" and rows["middling"]["verdict"] == "inconclusive"


@pytest.mark.parametrize(
    "d, outcome",
    [
        ([5.0, 5.5, 6.0], "above"),  # 95% interval [4.88, 6.12]: wholly above 2
        ([2.0, 2.2, 1.9], "consistent"),  # [1.65, 2.42]: holds 2 and excludes 0
        ([0.1, 0.2, 0.15], "below"),  # [0.03, 0.27]
        ([1.0, -1.0, 2.0], "undetermined"),  # [-3.3, 4.6]: holds 2 and 0 alike, too wide to tell them apart
    ],
)
def test_the_size_outcome_of_a_claim(tmp_path, d, outcome):
    path = write_claims(tmp_path / "c.toml", one_arm("sized", "0.001", "size = 2.0"), looks="[3]")
    results, _, _ = staged(path, RunStore(tmp_path / "runs"), {"sized": d})
    assert results["sized"].size_outcome == outcome


@pytest.mark.parametrize(
    "extra, message",
    [
        ("size = -1.0", "must be a magnitude > 0"),
        ("size = 0", "must be a magnitude > 0"),
        ("looks = [2, 4]", "at least 3"),
        ("looks = [5, 3]", "must rise"),
        ("seeds = 5", r"unknown field\(s\) seeds"),
        ('primary = "yes"', "true or false"),
    ],
)
def test_a_bad_size_or_plan_is_refused_with_the_claims_name(tmp_path, extra, message):
    path = write_claims(tmp_path / "c.toml", one_arm("bad", "0.001", extra))
    with pytest.raises(ClaimError, match=message) as error:
        load_claims(path)
    assert "claim 'bad'" in str(error.value)


def test_a_bounded_metric_against_a_threshold_can_only_be_claimed_higher(tmp_path):
    claim = one_arm("oracle", "0.001").replace('metric = "auc"', 'metric = "oracle_gain"')
    path = write_claims(tmp_path / "c.toml", claim.replace('direction = "higher"', 'direction = "lower"'))
    with pytest.raises(ClaimError, match="claim 'oracle': metric oracle_gain is >= 0 by construction"):
        load_claims(path)


def test_a_claims_file_without_a_plan_or_with_seeds_is_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seeds = 3\n[stand_ins]\nped2 = "tiny"\n' + one_arm("x", "0.001"))
    with pytest.raises(ClaimError, match=r"\[plan\] looks"):
        load_claims(path)
    path.write_text('[stand_ins]\nped2 = "tiny"\n' + one_arm("x", "0.001"))
    with pytest.raises(ClaimError, match="needs a seed plan"):
        load_claims(path)


def test_the_command_line_takes_no_seeds_for_claims(tmp_path):
    result = CliRunner().invoke(main, ["claims", "--seeds", "10"])
    assert result.exit_code == 2 and "No such option" in result.output
    path = write_claims(tmp_path / "c.toml", one_arm("x", "0.001"))
    result = CliRunner().invoke(main, ["claims", str(path), "--set", "seed=7", "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "--set seed is refused" in result.output
    assert not (tmp_path / "runs").exists()
    assert "--replicate" in CliRunner().invoke(main, ["claims", "--help"]).output


# ---------------------------------------------------------------------------------- pre-registration
def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_changed_declaration_appears_under_deviations(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@t")
    _git(repo, "config", "user.name", "t")
    path = write_claims(repo / "claims.toml", one_arm("kept", "0.001") + one_arm("moved", "0.002", "size = 2.0"))
    _git(repo, "add", "claims.toml")
    _git(repo, "commit", "-q", "-m", "register")
    out = tmp_path / "report"
    first = register(load_claims(path), path, out)
    assert first.deviations == () and first.commit == _git(repo, "rev-parse", "HEAD")

    path.write_text(path.read_text().replace("size = 2.0", "size = 3.0"))
    _git(repo, "commit", "-q", "-am", "a larger size after the runs")
    claims = load_claims(path)
    second = register(claims, path, out)
    assert [d.id for d in second.deviations] == ["moved"]
    assert second.deviations[0].changed_by == _git(repo, "rev-parse", "HEAD")
    assert (second.deviations[0].registered["size"], second.deviations[0].declared["size"]) == (2.0, 3.0)

    results, _, _ = staged(path, RunStore(tmp_path / "runs"), {"kept": [1.0] * 8, "moved": [1.0] * 8})
    claims_report(list(results.values()), out, "test", second)
    markdown = (out / "claims.md").read_text()
    deviations = markdown.split("## Deviations")[1].split("## Per claim")[0]
    assert "### moved" in deviations and "`size`: `2.0` → `3.0`" in deviations and "kept" not in deviations
    assert f"sha256 `{second.sha256}`" in markdown and "alpha 0.05" in markdown
    assert "Deviations" in (out / "index.html").read_text()


# ---------------------------------------------------------------------------------------- replication
def test_the_replication_compares_two_disjoint_seed_sets_claim_by_claim(tmp_path):
    claims = one_arm("stable", "0.001") + one_arm("fragile", "0.002")
    path = write_claims(tmp_path / "c.toml", claims, looks="[3]")
    store = RunStore(tmp_path / "runs")
    first, _, _ = staged(path, store, {"stable": [3.0, 3.1, 2.9], "fragile": [3.0, 3.1, 2.9]})
    second, executor, _ = staged(path, store, {"stable": [3.0, 3.2, 2.8], "fragile": [1.0, -1.0, 0.5]}, offset=1000)
    assert executor.seeds == {"stable": {0, 1, 2}, "fragile": {0, 1, 2}}
    assert second["stable"].seeds == (1000, 1001, 1002)
    out = tmp_path / "replication"
    paths = replication_report(list(first.values()), list(second.values()), out)
    lines = paths["md"].read_text().splitlines()
    assert lines[0] == "# Agreement 1 of 2 claims (50%) between two disjoint seed sets"
    rows = {row["id"]: row for row in csv.DictReader(paths["csv"].open())}
    assert (rows["stable"]["verdict"], rows["stable"]["replication"], rows["stable"]["agree"]) == (
        "supported",
        "supported",
        "True",
    )
    assert (rows["fragile"]["replication"], rows["fragile"]["agree"]) == ("inconclusive", "False")
