"""The pipeline without training: checkpoint adoption on hand-made run folders, metrics on hand-made signals."""

import shutil
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

import repro.runs as run_files
from repro import runs
from repro.config import load_config
from repro.pipeline import adopt_checkpoints, run_metrics
from repro.runs import RunStore

TWO_EPOCHS = ["train.epochs=2", "train.checkpoint_every=1"]


# ---------------------------------------------------------------------------------- adopt_checkpoints
@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def finished_run(store, cfg, state="done"):
    """A run folder as training leaves it: a checkpoint per epoch, its training log and its state."""
    run = store.prepare(cfg)
    for epoch in range(1, cfg.train.epochs + 1):
        run_files.save_checkpoint(run, epoch, {"model": {"weight": torch.full((2,), float(epoch))}})
        run_files.append_jsonl(run / "train.jsonl", {"epoch": epoch, "loss": 1 / epoch})
    run_files.set_status(run, state)
    return run


def test_a_run_differing_only_in_eval_links_the_finished_runs_checkpoints(store):
    source = finished_run(store, load_config(None, TWO_EPOCHS))
    cfg = load_config(None, [*TWO_EPOCHS, "eval.mnad.test_time_update=false"])
    run = store.prepare(cfg)
    assert run != source
    assert adopt_checkpoints(cfg, run, store) == 2
    adopted = run_files.checkpoints(run)
    assert [epoch for epoch, _ in adopted] == [1, 2]
    for epoch, path in adopted:
        assert path.stat().st_ino == run_files.checkpoint_path(source, epoch).stat().st_ino  # linked, not copied
        assert run_files.load_checkpoint(path)["model"]["weight"].tolist() == [epoch, epoch]
    assert (run / "train.jsonl").read_text() == (source / "train.jsonl").read_text()
    assert adopt_checkpoints(cfg, run, store) == 0  # now it has its own


@pytest.mark.parametrize(
    "other",
    [
        ["model.mnad.separateness=0"],  # another network
        ["seed=1"],  # other weights
        ["train.lr=1e-3"],  # another optimisation
    ],
)
def test_a_run_with_another_training_adopts_nothing(store, other):
    finished_run(store, load_config(None, TWO_EPOCHS))
    cfg = load_config(None, [*TWO_EPOCHS, *other])
    run = store.prepare(cfg)
    assert adopt_checkpoints(cfg, run, store) == 0
    assert run_files.checkpoints(run) == [] and not (run / "train.jsonl").exists()


@pytest.mark.parametrize("state", ["running", "failed"])
def test_an_unfinished_run_lends_no_checkpoints(store, state):
    finished_run(store, load_config(None, TWO_EPOCHS), state=state)
    cfg = load_config(None, [*TWO_EPOCHS, "eval.mnad.gamma=0.5"])
    run = store.prepare(cfg)
    assert adopt_checkpoints(cfg, run, store) == 0 and run_files.checkpoints(run) == []


def test_a_run_with_its_own_final_checkpoint_keeps_it(store):
    finished_run(store, load_config(None, TWO_EPOCHS))
    cfg = load_config(None, [*TWO_EPOCHS, "eval.mnad.gamma=0.5"])
    run = store.prepare(cfg)
    own = run_files.save_checkpoint(run, 2, {"model": {"weight": torch.full((2,), -1.0)}})
    assert adopt_checkpoints(cfg, run, store) == 0
    assert run_files.checkpoints(run) == [(2, own)]
    assert run_files.load_checkpoint(own)["model"]["weight"].tolist() == [-1.0, -1.0]
    assert not (run / "train.jsonl").exists()


def files_of(run) -> dict[str, bytes]:
    return {str(path.relative_to(run)): path.read_bytes() for path in run.rglob("*") if path.is_file()}


@pytest.mark.parametrize("damaged", [1, 2])
def test_an_unreadable_checkpoint_of_a_lender_is_reported_and_the_lender_left_as_it_is(store, damaged):
    lender = finished_run(store, load_config(None, TWO_EPOCHS))
    run_files.checkpoint_path(lender, damaged).write_bytes(b"not a checkpoint")
    (lender / "metrics.json").write_text("{}")
    before = files_of(lender)
    cfg = load_config(None, [*TWO_EPOCHS, "eval.mnad.gamma=0.5"])
    run = store.prepare(cfg)
    with pytest.warns(UserWarning, match=rf"epoch_00{damaged}\.pt of the finished run .* keeps its result"):
        assert adopt_checkpoints(cfg, run, store) == damaged - 1  # the readable ones before it
    assert files_of(lender) == before and runs.status(lender)["state"] == "done"


def test_a_lender_with_every_checkpoint_readable_is_preferred(store):
    broken = finished_run(store, load_config(None, TWO_EPOCHS))
    run_files.checkpoint_path(broken, 2).write_bytes(b"not a checkpoint")
    whole = finished_run(store, load_config(None, [*TWO_EPOCHS, "eval.mnad.gamma=0.7"]))
    cfg = load_config(None, [*TWO_EPOCHS, "eval.mnad.gamma=0.5"])
    run = store.prepare(cfg)
    with warnings.catch_warnings(record=True):  # whether the broken one is met first depends on the hashes
        assert adopt_checkpoints(cfg, run, store) == 2
    assert run_files.checkpoints(run)[-1][1].stat().st_ino == run_files.checkpoint_path(whole, 2).stat().st_ino


# ---------------------------------------------------------------------------------------- run_metrics
VIDEO = np.array([0] * 6 + [1] * 6)
LABEL = np.array([0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0])
TYPE = np.array([0, 0, 0, 1, 2, 0, 0, 0, 3, 1, 0, 0])  # normal, spatial, temporal, spatio-temporal
GRID = [0.0, 0.5, 1.0]
LAMBDA = 0.6


def g(values):
    """Min-max within each video, written out per video."""
    out = np.empty(len(values))
    for video in np.unique(VIDEO):
        chosen = VIDEO == video
        v = values[chosen]
        out[chosen] = (v - v.min()) / (v.max() - v.min())
    return out


def mnad_score(arrays, lam):
    """Eq. 16: 1 - (λ g(PSNR) + (1 - λ)(1 - g(distance)))."""
    return 1 - (lam * g(arrays["psnr"]) + (1 - lam) * (1 - g(arrays["distance"])))


def mnad_signals(seed):
    """Hand-made MNAD signals over 12 frames of two videos with memory usage."""
    rng = np.random.default_rng(seed)
    return {
        "psnr": rng.uniform(20, 30, 12),
        "regular": rng.uniform(0, 0.02, 12),
        "distance": rng.uniform(0, 1, 12),
        "video": VIDEO,
        "frame": np.tile(np.arange(6), 2),
        "label": LABEL,
        "anomaly_type": TYPE,
        "item_counts": np.array([3, 1, 0, 0]),
        "memory_zero_row_share": np.array([0.0]),  # the evaluation's MemoryTally summary (tests/models)
        "memory_active_fraction": np.array([0.5]),
        "memory_frame_perplexity": np.array([1.5]),
    }


@pytest.fixture
def mnad_epochs():
    """Epoch 1: the distance separates the classes and PSNR ranks them backwards, so λ = 0 is the best of
    every (epoch, λ); epoch 2 (the last): random signals."""
    first = mnad_signals(1)
    first["distance"] = np.where(LABEL == 1, 0.8, 0.2) + np.linspace(0, 0.1, 12)
    first["psnr"] = np.where(LABEL == 1, 30.0, 20.0) + np.linspace(0, 1, 12)
    return {1: first, 2: mnad_signals(2)}


def mnad_config(*overrides):
    return load_config(
        None,
        [
            *TWO_EPOCHS,
            f"eval.lambda_grid={GRID}",
            f"eval.mnad.lambda_score={LAMBDA}",
            "eval.mnad.gamma=0.01",
            *overrides,
        ],
    )


def test_the_honest_default_is_the_last_epoch_at_the_configured_lambda(mnad_epochs):
    metrics = run_metrics(mnad_config(), mnad_epochs)
    last = mnad_epochs[2]
    scores = mnad_score(last, LAMBDA)
    default = metrics["default"]
    assert default["epoch"] == 2 and default["lambda"] == LAMBDA
    assert default["auc"] == pytest.approx(roc_auc_score(LABEL, scores))
    assert default["aupr"] == pytest.approx(average_precision_score(LABEL, scores))
    raw = 1 - (
        LAMBDA * (last["psnr"] - last["psnr"].min()) / np.ptp(last["psnr"])
        + (1 - LAMBDA) * (1 - (last["distance"] - last["distance"].min()) / np.ptp(last["distance"]))
    )
    assert default["raw_auc"] == pytest.approx(roc_auc_score(LABEL, raw))  # one min-max over the whole set
    per_video = [roc_auc_score(LABEL[VIDEO == v], scores[VIDEO == v]) for v in (0, 1)]
    assert default["macro_auc"] == pytest.approx(np.mean(per_video))


def test_the_oracle_is_the_best_epoch_and_lambda_over_the_grid(mnad_epochs):
    metrics = run_metrics(mnad_config(), mnad_epochs)
    aucs = {
        (epoch, lam): roc_auc_score(LABEL, mnad_score(arrays, lam))
        for epoch, arrays in mnad_epochs.items()
        for lam in [*GRID, LAMBDA]
    }
    assert aucs[1, 0.0] == 1.0 and aucs[1, 1.0] == 0.0 and aucs[2, LAMBDA] < 1.0
    oracle = metrics["oracle"]
    assert (oracle["epoch"], oracle["lambda"], oracle["auc"]) == (1, 0.0, 1.0)
    for epoch in mnad_epochs:
        by_lambda = metrics["epochs"][str(epoch)]["lambdas"]
        assert set(by_lambda) == {"0", "0.5", "1", "0.6"}
        for lam in [*GRID, LAMBDA]:
            assert by_lambda[f"{lam:g}"]["auc"] == pytest.approx(aucs[epoch, lam])


def test_per_type_aucs_compare_each_type_with_the_normal_frames_at_the_default_lambda(mnad_epochs):
    metrics = run_metrics(mnad_config(), mnad_epochs)
    scores = mnad_score(mnad_epochs[2], LAMBDA)
    expected = {}
    for code, name in [(1, "spatial"), (2, "temporal"), (3, "spatio_temporal")]:
        chosen = (TYPE == 0) | (TYPE == code)
        expected[name] = pytest.approx(roc_auc_score(TYPE[chosen] > 0, scores[chosen]))
    assert metrics["default"]["per_type"] == expected
    assert set(metrics["epochs"]["1"]["per_type"]) == set(expected)


def test_a_real_dataset_without_types_has_no_per_type_aucs(mnad_epochs):
    for arrays in mnad_epochs.values():
        arrays["anomaly_type"] = np.full(12, -1)
    assert "per_type" not in run_metrics(mnad_config(), mnad_epochs)["default"]


def test_memory_usage_and_the_share_of_frames_that_updated_the_memory(mnad_epochs):
    last = mnad_epochs[2]
    memory = run_metrics(mnad_config(), mnad_epochs)["default"]["memory"]
    assert memory["counts"] == [3, 1, 0, 0] and memory["zero_row_share"] == 0.0
    assert memory["active_fraction"] == 0.5 and memory["frame_perplexity"] == 1.5
    assert memory["updated_frame_share"] == pytest.approx(np.mean(last["regular"] < 0.01))
    assert 0 < memory["updated_frame_share"] < 1 and memory["gamma"] == 0.01
    without_update = run_metrics(mnad_config("eval.mnad.test_time_update=false"), mnad_epochs)
    assert without_update["default"]["memory"]["updated_frame_share"] == 0.0


def test_the_distance_alone_and_constant_distance_videos(mnad_epochs):
    metrics = run_metrics(mnad_config(), mnad_epochs)
    first = metrics["epochs"]["1"]["memory"]
    assert first["distance_auc"] == pytest.approx(roc_auc_score(LABEL, g(mnad_epochs[1]["distance"])))
    assert first["distance_auc"] == 1.0 and first["constant_distance_videos"] == 0  # epoch 1: it separates
    mnad_epochs[2]["distance"] = np.where(VIDEO == 0, 0.3, mnad_epochs[2]["distance"])  # video 0 flat: NaN cause
    assert run_metrics(mnad_config(), mnad_epochs)["default"]["memory"]["constant_distance_videos"] == 1


def test_a_gamma_from_the_training_frames_is_the_one_reported_and_used(mnad_epochs):
    mnad_epochs[2]["gamma"] = np.array([0.005])
    memory = run_metrics(mnad_config(), mnad_epochs)["default"]["memory"]
    assert memory["gamma"] == 0.005
    assert memory["updated_frame_share"] == pytest.approx(np.mean(mnad_epochs[2]["regular"] < 0.005))


def test_without_memory_lambda_is_one_whatever_the_profile_says(mnad_epochs):
    for arrays in mnad_epochs.values():
        for key in [key for key in arrays if key == "distance" or "memory" in key or key == "item_counts"]:
            del arrays[key]  # what the evaluation of a memory-less MNAD saves
    mnad_epochs[1]["psnr"] = 50 - mnad_epochs[1]["psnr"]  # epoch 1's PSNR now ranks the classes right
    cfg = load_config(None, [*TWO_EPOCHS, "model.mnad.memory=false"])
    assert cfg.eval.mnad.lambda_score == LAMBDA  # the profile's, which PSNR alone cannot use
    metrics = run_metrics(cfg, mnad_epochs)
    aucs = {epoch: roc_auc_score(LABEL, 1 - g(arrays["psnr"])) for epoch, arrays in mnad_epochs.items()}
    assert metrics["default"]["lambda"] == 1.0 and metrics["default"]["auc"] == pytest.approx(aucs[2])
    assert aucs[1] == 1.0 and aucs[2] < 1.0
    assert (metrics["oracle"]["epoch"], metrics["oracle"]["lambda"], metrics["oracle"]["auc"]) == (1, 1.0, 1.0)
    assert all(set(epoch["lambdas"]) == {"1"} for epoch in metrics["epochs"].values())
    assert "memory" not in metrics["default"]


def test_a_reconstruction_baseline_scores_its_error_and_reports_its_memory_usage():
    rng = np.random.default_rng(0)
    epochs = {
        1: {
            "error": rng.uniform(0, 1, 12) + LABEL,
            "video": VIDEO,
            "label": LABEL,
            "anomaly_type": TYPE,
            "item_counts": np.array([5, 0, 2]),
            "memory_zero_row_share": np.array([0.25]),
            "memory_active_fraction": np.array([2 / 3]),
        }
    }
    metrics = run_metrics(load_config(None, ["model.name=memae", "train.epochs=1"]), epochs)
    default = metrics["default"]
    assert (default["epoch"], default["lambda"]) == (1, 1.0) and metrics["oracle"]["lambda"] == 1.0
    assert default["auc"] == pytest.approx(roc_auc_score(LABEL, g(epochs[1]["error"])))
    assert default["memory"]["zero_row_share"] == 0.25 and default["memory"]["active_fraction"] == pytest.approx(2 / 3)
    assert "updated_frame_share" not in default["memory"]  # MemAE's items are trained, never updated at test time


def test_a_run_finished_after_the_stores_index_was_read_is_adopted(store):
    first = load_config(None, [*TWO_EPOCHS, "eval.mnad.gamma=0.5"])
    assert adopt_checkpoints(first, store.prepare(first), store) == 0  # reads the store: nothing to adopt yet
    source = finished_run(store, load_config(None, TWO_EPOCHS), state="running")
    cfg = load_config(None, [*TWO_EPOCHS, "eval.mnad.test_time_update=false"])
    run = store.prepare(cfg)
    assert adopt_checkpoints(cfg, run, store) == 0  # its lender is still running
    run_files.set_status(source, "done")
    assert adopt_checkpoints(cfg, run, store) == 2


def test_a_lender_removed_from_the_store_is_passed_over_for_the_next(store):
    source = finished_run(store, load_config(None, TWO_EPOCHS))
    cfg = load_config(None, [*TWO_EPOCHS, "eval.mnad.gamma=0.5"])
    assert adopt_checkpoints(cfg, store.prepare(cfg), store) == 2
    run_files.set_status(store.run_dir(cfg), "done")
    shutil.rmtree(source)
    other = load_config(None, [*TWO_EPOCHS, "eval.mnad.test_time_update=false"])
    run = store.prepare(other)
    assert adopt_checkpoints(other, run, store) == 2  # from the run that adopted them, the only lender left
    assert (
        run_files.checkpoints(run)[0][1].stat().st_ino == run_files.checkpoints(store.run_dir(cfg))[0][1].stat().st_ino
    )


def test_the_store_is_read_once_per_process_not_once_per_run(store, monkeypatch):
    for seed in range(3):
        finished_run(store, load_config(None, [*TWO_EPOCHS, f"seed={seed}"]))
    loaded = []
    monkeypatch.setattr(runs, "load_config", lambda path: loaded.append(path) or load_config(path))
    for seed in range(3):
        cfg = load_config(None, [*TWO_EPOCHS, f"seed={seed}", "eval.mnad.gamma=0.5"])
        assert adopt_checkpoints(cfg, store.prepare(cfg), store) == 2
    assert len(loaded) == len(set(loaded)) == 6  # each config.toml once: three lenders, three borrowers


def test_a_folder_with_a_bad_config_is_skipped_with_a_warning(store):
    finished_run(store, load_config(None, TWO_EPOCHS))
    (store.root / "000000000000").mkdir()
    (store.root / "000000000000" / "config.toml").write_text("seed = [")
    cfg = load_config(None, [*TWO_EPOCHS, "eval.mnad.gamma=0.5"])
    with pytest.warns(UserWarning, match="000000000000: skipped"):
        assert adopt_checkpoints(cfg, store.prepare(cfg), store) == 2
