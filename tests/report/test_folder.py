"""build_report / report_source on fabricated run folders: links point at files, broken runs are named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import metrics_record
from PIL import Image

from repro.cli import main
from repro.config import load_config, to_toml
from repro.report.folder import ReportWarning, build_report, report_source
from repro.runs import RunStore, save_signals, set_status, write_metrics

M, D = 4, 8


def fabricate_run(root: Path, seed: int) -> Path:
    """A finished MNAD run folder with every file the report reads (no model involved)."""
    cfg = load_config("synthetic", ["data.preset=tiny", "model.mnad.width=4", f"seed={seed}"])
    run = RunStore(root).run_dir(cfg)  # named by config hash, as the pipeline names it
    run.mkdir(parents=True)
    (run / "config.toml").write_text(to_toml(cfg))
    rng = np.random.default_rng(seed)
    label = np.r_[np.zeros(30), np.ones(10), np.zeros(20)].astype(np.int64)
    save_signals(
        run,
        2,
        psnr=30 - 5 * label + rng.normal(0, 1, 60),
        distance=label + rng.normal(0, 0.3, 60),
        regular=rng.random(60),
        video=np.repeat([0, 1], 30),
        frame=np.tile(np.arange(30), 2),
        label=label,
        anomaly_type=label * 2,
        item_counts=np.array([20, 30, 10, 0]),
    )
    counts = [20, 30, 10, 0]
    metric = {
        "auc": 0.9,
        "raw_auc": 0.9,
        "macro_auc": 0.9,
        "aupr": 0.8,
        "eer": 0.1,
        "epoch": 2,
        "lambda": 0.6,
        "per_type": {"temporal": 0.9},
        "memory": {"counts": counts, "active_fraction": 0.75, "perplexity": 2.8},
    }
    oracle = {key: metric[key] for key in ("raw_auc", "macro_auc", "aupr", "eer", "epoch", "lambda")}
    write_metrics(run, metrics_record(metric, {**oracle, "auc": 0.95}))
    images = rng.random((4, 16, 16, 3))
    queries = np.concatenate([rng.normal(c * 10, 1, (40, D)) for c in range(M)])
    np.savez(
        run / "examples.npz",
        example_input=images,
        example_output=images * 0.9,
        example_target=images,
        example_type=np.arange(4),
        queries=queries,
        assignments=np.repeat(np.arange(M), 40),
        items=np.stack([np.full(D, c * 10.0) for c in range(M)]),
    )
    set_status(run, "done")
    return run


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "runs"
    return root, [fabricate_run(root, seed) for seed in (1, 2)]


def links(index: Path) -> list[str]:
    text = index.read_text()
    return re.findall(r"\]\(([^)]+)\)", text) if index.suffix == ".md" else re.findall(r'(?:href|src)="([^"]+)"', text)


def test_index_links_only_existing_files(store, tmp_path):
    root, runs = store
    index = report_source(root, tmp_path / "report", root)
    for page in (index, index.with_suffix(".html")):
        found = links(page)
        assert len(found) >= 2 * 6 + 3  # six figures per run and the md/csv/tex summary table
        assert all((page.parent / link).is_file() for link in found), found


def test_figures_are_non_blank(store, tmp_path):
    _, runs = store
    build_report(runs[:1], tmp_path / "report")
    pngs = sorted((tmp_path / "report" / "runs" / runs[0].name).glob("*.png"))
    assert {p.stem for p in pngs} == {"memory", "tsne", "roc", "timeline", "reconstruction", "curves"}
    for png in pngs:
        pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
        assert pixels.std() > 5, png


def test_missing_metrics_and_corrupt_signals_are_named_and_rest_reported(store, tmp_path):
    _, (good, broken) = store
    (broken / "metrics.json").unlink()
    (broken / "signals" / "epoch_002.npz").write_bytes(b"not a zip")
    with pytest.warns(ReportWarning) as caught:
        index = build_report([good, broken], tmp_path / "report")
    messages = [str(w.message) for w in caught]
    assert any(broken.name in m and "metrics.json" in m for m in messages), messages
    assert any(broken.name in m and "signals" in m for m in messages), messages
    assert not any(good.name in m for m in messages)
    text = index.read_text()
    assert f"runs/{good.name}/roc.png" in text and f"runs/{good.name}/memory.png" in text
    assert f"runs/{broken.name}/reconstruction.png" in text  # examples.npz was intact
    assert f"runs/{broken.name}/roc.png" not in text


def test_valid_files_of_the_wrong_shape_are_named_and_rest_reported(store, tmp_path):
    _, (good, broken) = store
    np.savez(broken / "examples.npz", queries=np.zeros(3))  # valid npz, none of the example frames
    with np.load(broken / "signals" / "epoch_002.npz") as data:
        arrays = {name: data[name] for name in data.files}
    np.savez(broken / "signals" / "epoch_002.npz", **arrays | {"label": arrays["label"][:-1]})
    with pytest.warns(ReportWarning) as caught:
        index = build_report([good, broken], tmp_path / "report")
    messages = [str(w.message) for w in caught]
    assert any("examples.npz" in m and "example_input" in m for m in messages), messages
    assert any("epoch_002.npz is not a run's signals" in m for m in messages), messages
    assert f"runs/{good.name}/reconstruction.png" in index.read_text()


def test_cli_report_of_a_table_without_runs_names_them(tmp_path):
    table = Path(__file__).parents[2] / "ablations" / "figures.toml"
    result = CliRunner().invoke(
        main, ["report", str(table), "--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "index.html").is_file()
    assert "Run `" not in (tmp_path / "out" / "index.md").read_text()


def test_a_run_without_memory_gets_its_roc_and_timeline_at_lambda_1(store, tmp_path):
    from repro.report.folder import run_figure
    from repro.runs import load_signals

    _, runs = store
    signals = load_signals(runs[0], 2)
    save_signals(runs[0], 2, **{key: value for key, value in signals.items() if key != "distance"})  # PSNR only
    for kind in ("roc", "timeline"):
        assert run_figure(runs[0], tmp_path / "figures", kind) == tmp_path / "figures" / f"{kind}.png"
    assert (tmp_path / "figures" / "roc.png").is_file()
