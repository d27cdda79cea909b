"""A run writes the memory diagnostics: per training epoch in train.jsonl, at test in metrics.json
(docs/method.md#reporting-protocol-and-memory-diagnostics)."""

import json

import numpy as np
import pytest
import torch

import repro.runs as run_files
from repro.config import load_config
from repro.evaluate import evaluate_model
from repro.pipeline import datasets, execute_run
from repro.runs import RunStore
from repro.train import build_model

pytestmark = pytest.mark.slow


def test_a_run_records_usage_per_epoch_gamma_from_training_frames_and_the_read_ablation(tmp_path):
    cfg = load_config(
        "synthetic",
        [
            "data.preset=tiny",
            f"data.root={tmp_path / 'synthetic'}",
            "data.size=32",
            "model.mnad.width=4",
            "train.epochs=2",
            "train.checkpoint_every=2",
            "eval.mnad.gamma_quantile=0.5",
            "eval.mnad.read_ablation=true",
        ],
    )
    run = execute_run(cfg, RunStore(tmp_path / "runs"), progress=False)
    epochs = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    training = datasets(cfg)[0]
    clips = len(training) // cfg.train.batch_size * cfg.train.batch_size if cfg.train.drop_last else len(training)
    for epoch in epochs:  # every training query of the epoch counted once: (32 / 8)^2 = 16 per clip
        assert sum(epoch["memory"]["counts"]) == clips * 16
        assert 1 <= epoch["memory"]["frame_perplexity"] <= epoch["memory"]["perplexity"] + 1e-9
        assert epoch["memory"]["camera_position_item_share"] >= 0  # one camera: the share of position alone
    memory = json.loads((run / "metrics.json").read_text())["default"]["memory"]
    model = build_model(cfg)
    model.load_state_dict(run_files.load_checkpoint(run / "checkpoints" / "epoch_002.pt")["model"])
    on_training = evaluate_model(
        model, cfg.model.method, training, torch.device("cpu"), test_time_update=False, gamma=0
    )
    assert memory["gamma"] == pytest.approx(np.quantile(on_training["regular"], 0.5), rel=1e-6)
    assert memory["gamma"] != cfg.eval.mnad.gamma
    assert set(memory["read_ablation"]) == {"zeros", "mean", "shuffled"}
    assert all(set(change) == {"psnr_change", "auc_change"} for change in memory["read_ablation"].values())
    assert 0 <= memory["distance_auc"] <= 1 and memory["constant_distance_videos"] >= 0
    for key in ("frame_perplexity", "largest_share", "camera_position_item_share", "camera_position_query_variance"):
        assert 0 <= memory[key] <= max(10, memory["perplexity"]), key
