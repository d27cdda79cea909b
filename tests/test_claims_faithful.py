"""Claims that test what the sources say: the quote and the isolated size are required, the testability
gate on hand-made runs, the empirical chance level, the γ sensitivity beside the verdict and per-seed worlds."""

from pathlib import Path

import numpy as np
import pytest
from fakes import metrics_record

from repro.claims import NOT_TESTABLE, ClaimError, claim_runs, judge, load_claims
from repro.grids import placed
from repro.inference import permutation_null
from repro.report.claims import claims_report
from repro.runs import RunStore, save_signals, set_status, write_metrics
from repro.scoring import minmax_per_video, per_type_auc

SCORES = {"raw_auc": 0.5, "macro_auc": 0.5, "aupr": 0.5, "eer": 0.5, "epoch": 1, "lambda": 1.0}


def claim(claim_id: str, extra: str = "", task: str = "pred", quote: str = '"the source\'s row"') -> str:
    return f"""
[[claim]]
id = "{claim_id}"
source = "test"
{f"quote = {quote}" if quote else ""}
statement = "memory helps"
dataset = "ped2"
metric = "auc"
direction = "higher"
change = ["model.mnad.memory"]
control = ["model.mnad.task={task}", "model.mnad.memory=false"]
treatment = ["model.mnad.task={task}", "model.mnad.memory=true"]
{extra}
"""


def claims_file(path: Path, claims: str, plan: str = "") -> Path:
    path.write_text(f'[plan]\nlooks = [3]\n{plan}\n[stand_ins]\nped2 = "tiny"\n' + claims)
    return path


# ------------------------------------------------------------------------------------------ declarations
def test_a_claim_without_a_quote_is_refused_with_its_name(tmp_path):
    path = claims_file(tmp_path / "c.toml", claim("unquoted", quote=""))
    with pytest.raises(ClaimError, match="claim 'unquoted': needs `quote`"):
        load_claims(path)


@pytest.mark.parametrize(
    "extra, message",
    [
        ("size = 2.7", "size 2.7 needs `size_from`"),
        ('size = 2.7\nsize_from = "Table 1"\nisolated = false', "size 2.7 on a contrast the source does not isolate"),
    ],
)
def test_a_size_the_source_does_not_isolate_is_refused_with_the_claims_name(tmp_path, extra, message):
    path = claims_file(tmp_path / "c.toml", claim("sized", extra))
    with pytest.raises(ClaimError, match=message) as error:
        load_claims(path)
    assert "claim 'sized'" in str(error.value)


def test_a_project_contrast_is_exploratory_and_cannot_be_primary(tmp_path):
    loaded = load_claims(claims_file(tmp_path / "c.toml", claim("ours", 'origin = "project"')))
    assert loaded[0].origin == "project" and not loaded[0].primary
    path = claims_file(tmp_path / "d.toml", claim("ours", 'origin = "project"\nprimary = true'))
    with pytest.raises(ClaimError, match="claim 'ours': origin 'project'"):
        load_claims(path)


def test_every_shipped_claim_quotes_its_source_and_sizes_only_isolated_contrasts():
    claims = load_claims(Path(__file__).parents[1] / "ablations" / "claims.toml")
    assert len(claims) >= 35
    assert all(c.quote.strip() for c in claims)
    assert all(c.size_from for c in claims if c.size is not None)
    assert {c.stand_in for c in claims} >= {"single", "busy", "cameras", "scenes"}
    by_id = {c.id: c for c in claims}
    assert by_id["skips-bypass-the-memory"].metric == "probe_skips_psnr_change"
    assert by_id["reconstruction-misses-temporal-anomalies"].null
    assert by_id["uniform-supervision-raises-prediction-auc"].size is None
    assert by_id["noise-stops-skip-copying"].origin == "project"


# ----------------------------------------------------------------------------------- hand-made runs
def finish(run, auc: float, per_type: dict[str, float], types: np.ndarray, videos: np.ndarray) -> None:
    """A finished run with a default AUC, per-type AUCs and a signals file of the given layout (no training)."""
    run.folder.mkdir(parents=True, exist_ok=True)
    RunStore(run.folder.parent).prepare(run.config)
    default = {**SCORES, "auc": auc / 100, "per_type": {k: v / 100 for k, v in per_type.items()}}
    write_metrics(run.folder, metrics_record(default))
    psnr = np.linspace(20, 30, types.size)
    labels = (types > 0).astype(np.int8)
    save_signals(run.folder, 1, psnr=psnr, regular=psnr, label=labels, video=videos, anomaly_type=types)
    set_status(run.folder, "done")


LAYOUT = np.array([0] * 40 + [1] * 20 + [2] * 20 + [3] * 20, dtype=np.int8)  # shares 1/3 each


def judged(tmp_path, claims: str, control_auc: float, task: str = "pred", treatment_auc: float | None = None):
    claims_list = load_claims(claims_file(tmp_path / "c.toml", claims))
    store = RunStore(tmp_path / "runs")
    runs = placed(claim_runs(claims_list, "synthetic", None), store)
    videos = np.repeat([0, 1], LAYOUT.size // 2)
    for run in runs:
        treated = run.labels["arm"] == "treatment"
        auc = (treatment_auc if treated and treatment_auc is not None else control_auc) + 0.1 * (run.seed % 3)
        per_type = {"spatial": auc, "temporal": auc, "spatio_temporal": auc}
        finish(run, auc, per_type, LAYOUT, videos)
    return {r.claim.id: r for r in judge(claims_list, runs, store)}


def test_a_control_at_99_leaves_no_room_for_a_claimed_2_7_and_is_not_testable(tmp_path):
    extra = 'size = 2.7\nsize_from = "Table 1, w/o and w/ memory"'
    result = judged(tmp_path, claim("capped", extra), control_auc=99.0, treatment_auc=99.5)["capped"]
    assert not result.gate.testable and result.verdict == result.verdict_raw == NOT_TESTABLE
    assert result.gate.room == pytest.approx(100 - 99.1) and "needed 2.7" in result.gate.reason


def test_a_control_at_85_is_tested(tmp_path):
    extra = 'size = 2.7\nsize_from = "Table 1, w/o and w/ memory"'
    result = judged(tmp_path, claim("room", extra), control_auc=85.0, treatment_auc=95.0)["room"]
    assert result.gate.testable and result.gate.room == pytest.approx(100 - 85.1)
    assert result.verdict == "supported"


def test_a_one_frame_model_cannot_move_the_temporal_type(tmp_path):
    """Reconstruction sees one frame: its temporal AUC (here 60) is pinned, so its frame AUC can reach only
    (1/3) 60 + (2/3) 100 = 86.7 from a control at 85: +1.6 of room against a claimed 3.8."""
    extra = 'size = 3.8\nsize_from = "Table 1"'
    claims_list = load_claims(claims_file(tmp_path / "c.toml", claim("pinned", extra, task="recon")))
    store = RunStore(tmp_path / "runs")
    runs = placed(claim_runs(claims_list, "synthetic", None), store)
    videos = np.repeat([0, 1], LAYOUT.size // 2)
    for run in runs:
        finish(run, 85.0, {"spatial": 97.5, "temporal": 60.0, "spatio_temporal": 97.5}, LAYOUT, videos)
    result = judge(claims_list, runs, store)[0]
    assert result.gate.room == pytest.approx(60 / 3 + 200 / 3 - 85.0)
    assert result.verdict == NOT_TESTABLE


def test_a_claim_that_fails_the_gate_leaves_the_family(tmp_path):
    """Two claims on the same runs (control 99): the one claiming +2.7 is not testable, the one with no size needs
    only the metric's smallest effect (0.5) and is tested, alone in the family: Holm leaves its p-value as is."""
    claims = claim("capped", 'size = 2.7\nsize_from = "Table 1"') + claim("open")
    results = judged(tmp_path, claims, control_auc=99.0, treatment_auc=99.6)
    assert results["capped"].verdict == NOT_TESTABLE and results["open"].testable
    assert results["open"].p_adjusted == pytest.approx(results["open"].p_value)
    assert results["capped"].p_adjusted == pytest.approx(results["capped"].p_value)


def test_the_report_counts_the_untestable_apart_and_shows_each_claims_quote_and_gate(tmp_path):
    claims = claim("capped", 'size = 2.7\nsize_from = "Table 1"') + claim("open")
    results = judged(tmp_path, claims, control_auc=99.0, treatment_auc=99.6)
    claims_report(list(results.values()), tmp_path / "report")
    markdown = (tmp_path / "report" / "claims.md").read_text()
    first = markdown.splitlines()[0]
    assert first.startswith("# 2 claims (2 primary, 0 exploratory); 1 not testable on this stand-in (apart")
    assert "1 supported after Holm" in first
    assert "> the source's row" in markdown
    assert "- testability gate: failed: reference 99.10, reachable ceiling 100.00: room 0.90 < needed 2.7" in markdown


# ------------------------------------------------------------------------------------------ chance level
def blind_scores(rng: np.random.Generator, types: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Per-video min-max scores that carry no temporal information: normal and temporal frames alike, spatial
    and spatio-temporal frames 4 SD higher (as a one-frame reconstruction model)."""
    raw = rng.normal(size=types.size) + 4.0 * np.isin(types, (1, 3))
    return minmax_per_video(raw, videos)


def test_the_empirical_null_of_a_score_without_information_is_its_permutation_value():
    rng = np.random.default_rng(0)
    video_types = [[1, 3], [2, 2], [3, 3], [1, 1], [1, 2], [3, 2]]  # `single`'s event layout (review 2.5)
    types = np.concatenate([np.repeat([0, a, 0, b, 0], [20, 25, 30, 25, 20]) for a, b in video_types]).astype(np.int8)
    videos = np.repeat(np.arange(6), 120)
    observed, nulls = [], []
    for _ in range(40):
        scores = blind_scores(rng, types, videos)
        observed.append(100 * per_type_auc(scores, types)["temporal"])
        nulls.append(permutation_null(scores, types, videos, (2,), draws=50, seed=int(rng.integers(1 << 30))))
    assert np.mean(nulls) == pytest.approx(np.mean(observed), abs=1.5)
    assert np.mean(nulls) > 53  # per-video min-max lifts a blind score above 50: 50 is not chance here


def test_a_claim_against_chance_compares_with_the_same_runs_null(tmp_path):
    claims = """
[[claim]]
id = "blind"
source = "test"
quote = "the source's words"
size_from = "the project's margin"
statement = "reconstruction scores temporal anomalies at chance"
dataset = "ped2"
metric = "auc_temporal"
direction = "equal"
size = 10.0
arm = ["model.mnad.task=recon", "model.mnad.memory=true"]
threshold = "permutation"
"""
    claims_list = load_claims(claims_file(tmp_path / "c.toml", claims))
    store = RunStore(tmp_path / "runs")
    runs = placed(claim_runs(claims_list, "synthetic", None), store)
    videos = np.repeat([0, 1], LAYOUT.size // 2)
    for run in runs:
        finish(run, 80.0, {"spatial": 90.0, "temporal": 55.0, "spatio_temporal": 90.0}, LAYOUT, videos)
    result = judge(claims_list, runs, store)[0]
    assert len(result.nulls) == 3 and all(0 < n < 100 for n in result.nulls)
    assert result.look.effect == pytest.approx(55.0 - np.mean(result.nulls))


# ------------------------------------------------------------------------------- worlds and sensitivity
def test_a_per_seed_world_ties_the_synthetic_seed_to_the_run_seed_and_fixed_keeps_it(tmp_path):
    fixed = load_claims(claims_file(tmp_path / "f.toml", claim("c")))
    drawn = load_claims(claims_file(tmp_path / "d.toml", claim("c"), plan='world = "per-seed"'))
    assert {r.config.data.synth_seed for r in claim_runs(fixed, "synthetic", None)} == {0}
    assert {(r.seed, r.config.data.synth_seed) for r in claim_runs(drawn, "synthetic", None)} == {
        (0, 0),
        (1, 1),
        (2, 2),
    }


def test_a_sensitivity_adds_treatments_beside_the_verdict(tmp_path):
    extra = 'sensitivity = { "γ q10" = ["eval.mnad.gamma_quantile=0.1"], "γ q50" = ["eval.mnad.gamma_quantile=0.5"] }'
    claims_list = load_claims(claims_file(tmp_path / "c.toml", claim("gamma", extra)))
    runs = claim_runs(claims_list, "synthetic", None)
    arms = {r.labels["arm"] for r in runs}
    assert arms == {"control", "treatment", "treatment@γ q10", "treatment@γ q50"}
    quantiles = {r.config.method_eval.gamma_quantile for r in runs if r.labels["arm"] == "treatment@γ q10"}
    assert quantiles == {0.1}
