import matplotlib.image
import numpy as np
import pytest
from matplotlib.colors import to_rgba

from repro.report.figures import (
    ANOMALY_TYPES,
    DPI,
    GRID_PANEL,
    HISTOGRAM_SIZE,
    PROBE_SIZE,
    ROC_SIZE,
    TIMELINE_ROW,
    TIMELINE_WIDTH,
    TSNE_SIZE,
    memory_usage_figure,
    memory_usage_histogram,
    probe_bars,
    probe_figure,
    reconstruction_figure,
    reconstruction_grid,
    roc_curves,
    roc_figure,
    score_timeline,
    score_timeline_figure,
    tsne_embedding,
    tsne_map,
)


def assert_image(path, size_inches):
    """A non-blank PNG of size_inches * DPI pixels, and its SVG beside it."""
    pixels = matplotlib.image.imread(path)
    width, height = size_inches
    assert pixels.shape[:2] == (round(height * DPI), round(width * DPI))
    assert pixels[..., :3].std() > 0
    assert path.with_suffix(".svg").read_text().lstrip().startswith("<?xml")


def two_clusters(n: int = 100, d: int = 10, gap: float = 10.0):
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(size=(n, d)), rng.normal(size=(n, d)) + gap])
    assignments = np.repeat([0, 1], n)
    items = np.stack([features[:n].mean(0), features[n:].mean(0)])
    return features, assignments, items


def test_histogram_has_one_bar_per_item_summing_to_the_queries():
    counts = np.array([50, 0, 3, 120, 0, 0, 7, 9, 0, 11])
    (ax,) = memory_usage_figure(counts, "test").axes
    heights = [bar.get_height() for bar in ax.patches]
    assert len(heights) == 10 and sum(heights) == counts.sum()
    assert heights == counts.tolist()
    assert "active 60% of 10, perplexity" in ax.get_title()


def test_histogram_png_is_non_blank_and_of_the_fixed_size(tmp_path):
    paths = memory_usage_histogram(np.array([5, 1, 0, 2]), "usage", tmp_path, "usage")
    assert [p.name for p in paths] == ["usage.png", "usage.svg"]
    assert_image(paths[0], HISTOGRAM_SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["usage.png", "usage.svg"]  # no temporary files


def test_tsne_places_two_separated_clusters_apart_and_items_with_their_cluster(tmp_path):
    features, assignments, items = two_clusters()
    paths, embedding = tsne_map(features, assignments, items, tmp_path, "tsne", seed=0)
    first, second = embedding.queries[:100], embedding.queries[100:]
    spread = max(first.std(0).max(), second.std(0).max())
    assert np.linalg.norm(first.mean(0) - second.mean(0)) > 5 * spread
    for item, cluster in zip(embedding.items, (first, second)):
        other = second if cluster is first else first
        assert np.linalg.norm(item - cluster.mean(0)) < np.linalg.norm(item - other.mean(0))
    assert_image(paths[0], TSNE_SIZE)


def test_tsne_subsamples_deterministically_beyond_max_points():
    features, _, items = two_clusters(n=60)
    one = tsne_embedding(features, items, seed=1, max_points=50)
    two = tsne_embedding(features, items, seed=1, max_points=50)
    assert one.queries.shape == (50, 2) and one.items.shape == (2, 2)
    assert np.array_equal(one.kept, two.kept) and np.all(np.diff(one.kept) > 0)
    np.testing.assert_array_equal(one.queries, two.queries)


def test_tsne_rejects_mismatched_feature_sizes():
    with pytest.raises(ValueError, match=r"features \(n, d\) and items \(m, d\), got \(5, 3\) and \(2, 4\)"):
        tsne_embedding(np.zeros((5, 3)), np.zeros((2, 4)))


def test_roc_legend_carries_each_auc(tmp_path):
    labels = np.array([0, 0, 1, 1])
    perfect, worst = np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.9, 0.8, 0.2, 0.1])
    figure = roc_figure({"perfect": (perfect, labels), "worst": (worst, labels)})
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == ["perfect (AUC 1.000)", "worst (AUC 0.000)"]
    assert_image(roc_curves({"perfect": (perfect, labels)}, tmp_path, "roc")[0], ROC_SIZE)


def test_probe_bars_are_the_psnr_changes_grouped_by_part_and_fill(tmp_path):
    changes = {("bottleneck", "zeros"): -0.5, ("bottleneck", "noise"): -1.25, ("bottleneck+skips", "zeros"): -8.0}
    rows = [{"replaced": part, "fill": fill, "psnr_change": change} for (part, fill), change in changes.items()]
    ax = probe_figure(rows).axes[0]
    parts = {round(tick): label.get_text() for tick, label in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True)}
    fills = [text.get_text() for text in ax.get_legend().get_texts()]  # one bar container per fill, in order
    bars = {
        (parts[round(bar.get_x() + bar.get_width() / 2)], fill): bar.get_height()
        for container, fill in zip(ax.containers, fills, strict=True)
        for bar in container
        if np.isfinite(bar.get_height())  # an absent (part, fill) pair draws no bar
    }
    assert bars == pytest.approx(changes)
    assert_image(probe_bars(rows, tmp_path, "probe")[0], PROBE_SIZE)


def test_timeline_shades_each_labelled_span_in_its_type_colour(tmp_path):
    labels = np.array([0, 1, 1, 0, 0, 1, 0, 0, 1, 1])
    types = np.array([0, 1, 1, 0, 0, 3, 0, 0, 2, 2])
    video_ids = np.array([4, 4, 4, 4, 4, 4, 9, 9, 9, 9])
    figure = score_timeline_figure(np.linspace(0, 1, 10), labels, video_ids, [4, 9], anomaly_types=types)
    spans = [[(p.get_x() + 0.5, p.get_width(), p.get_facecolor()[:3]) for p in ax.patches] for ax in figure.axes]
    colour = {code: to_rgba(c)[:3] for code, (_, c) in ANOMALY_TYPES.items()}
    assert spans == [[(1, 2, colour[1]), (5, 1, colour[3])], [(2, 2, colour[2])]]
    paths = score_timeline(np.linspace(0, 1, 10), labels, video_ids, [4, 9], tmp_path, "timeline")
    assert_image(paths[0], (TIMELINE_WIDTH, 2 * TIMELINE_ROW))


def test_timeline_names_videos_it_cannot_find():
    with pytest.raises(ValueError, match=r"videos \[7\] not in video_ids \[1, 2\]"):
        score_timeline_figure(np.zeros(4), np.zeros(4), np.array([1, 1, 2, 2]), [1, 7])


def test_reconstruction_grid_titles_each_row_with_its_mse(tmp_path):
    rng = np.random.default_rng(0)
    grey = {
        "title": "spatial",
        "input": rng.uniform(size=(8, 8, 1)),
        "output": np.zeros((8, 8, 1)),
        "target": np.full((8, 8, 1), 0.5),
    }
    colour = {"title": "normal", **{key: rng.uniform(size=(8, 8, 3)) for key in ("input", "output", "target")}}
    figure = reconstruction_figure([grey, colour])
    mse = np.mean((colour["output"] - colour["target"]) ** 2)
    assert [row.get_suptitle() for row in figure.subfigs] == ["spatial: MSE 0.2500", f"normal: MSE {mse:.4f}"]
    assert len(figure.axes) == 8
    assert_image(reconstruction_grid([grey, colour], tmp_path, "recon")[0], (4 * GRID_PANEL, 2 * GRID_PANEL))
    with pytest.raises(ValueError, match="example 0 .'spatial'.: output and target need one"):
        reconstruction_figure([grey | {"target": np.zeros((4, 4, 1))}])


def test_timeline_without_types_shades_labelled_spans_grey():
    figure = score_timeline_figure(np.zeros(6), np.array([0, 1, 1, 0, 1, 0]), np.zeros(6), [0])
    assert [(p.get_x() + 0.5, p.get_facecolor()[:3]) for p in figure.axes[0].patches] == [
        (1, to_rgba("tab:gray")[:3]),
        (4, to_rgba("tab:gray")[:3]),
    ]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["anomalous (labelled)"]
