"""Label loaders against the published files and every published form (docs/method.md#scoring-and-evaluation,
docs/data.md#labels)."""

import numpy as np
import pytest
from scipy.io import savemat

from repro.data.labels import (
    PUBLISHED,
    cross_check_totals,
    load_flat_labels,
    load_test_labels,
    load_vollabel,
    parse_ucsd_m,
    read_labels,
    split_flat,
)
from repro.data.layout import DataError, find_videos

PED2_RANGES = [
    (61, 180),
    (95, 180),
    (1, 146),
    (31, 180),
    (1, 129),
    (1, 159),
    (46, 180),
    (1, 180),
    (1, 120),
    (1, 150),
    (1, 180),
    (88, 180),
]
PED2_COUNTS, PED2_NAMES = PUBLISHED["ped2"][2], [f"{i:02d}" for i in range(1, 13)]


@pytest.fixture
def ped2_root(tmp_path):
    """Test frame folders with the real Ped2 counts (empty files: discovery never decodes)."""
    for name, count in zip(PED2_NAMES, PED2_COUNTS):
        folder = tmp_path / "ped2" / "testing" / "frames" / name
        folder.mkdir(parents=True)
        for i in range(count):
            (folder / f"{i:03d}.jpg").touch()
    return tmp_path


def _test_labels(root, source):
    videos = find_videos(root, "ped2", "testing")
    return load_test_labels("ped2", [len(v) for v in videos], [v.name for v in videos], source)


def test_ped2_anomalies_start_where_published(ped2_root, labels_dir):
    labels = _test_labels(ped2_root, labels_dir / "frame_labels_ped2.npy")
    assert np.flatnonzero(labels[0])[0] == 60 and np.flatnonzero(labels[11])[0] == 87
    assert sum(int(x.sum()) for x in labels) == 1648


def test_wrong_frame_count_names_the_video(ped2_root, labels_dir):
    (ped2_root / "ped2" / "testing" / "frames" / "05" / "149.jpg").unlink()
    with pytest.raises(DataError, match="ped2 test video 05 has 149 frames; the published labels expect 150"):
        _test_labels(ped2_root, labels_dir / "frame_labels_ped2.npy")


def test_avenue_totals(labels_dir):
    flat = load_flat_labels(labels_dir / "frame_labels_avenue.npy")
    assert flat.shape == (15324,) and flat.sum() == 3867
    per_video = split_flat(flat, PUBLISHED["avenue"][2], [f"{i:02d}" for i in range(1, 22)], "avenue")
    assert [len(x) for x in per_video] == list(PUBLISHED["avenue"][2])
    cross_check_totals("avenue", per_video, "avenue")


def test_shanghaitech_one_dimensional_file_loads(labels_dir):
    flat = load_flat_labels(labels_dir / "frame_labels_shanghai.npy")
    assert flat.shape == (40791,) and flat.sum() == 17326
    cross_check_totals("shanghaitech", split_flat(flat, [40000, 791], ["a", "b"], "sh"), "sh")


@pytest.mark.parametrize("counts, word", [([3, 3], "longer"), ([4, 4], "shorter")])
def test_labels_longer_or_shorter_than_frames(tmp_path, counts, word):
    path = tmp_path / "labels.npy"
    np.save(path, np.zeros((1, 7), np.int64))
    with pytest.raises(DataError, match=rf"labels.npy holds 7 labels, {word} than the {sum(counts)} test frames"):
        read_labels(path, counts, ["01", "02"])


def test_flat_file_rejects_other_shapes_and_values(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"shape \(2, 3\); expected \(N,\) or \(1, N\)"):
        load_flat_labels(tmp_path / "a.npy")
    np.save(tmp_path / "b.npy", np.array([0, 2]))
    with pytest.raises(DataError, match="values \\[0, 2\\]; expected only 0 and 1"):
        load_flat_labels(tmp_path / "b.npy")


def test_ucsd_m_ranges_give_the_published_ped2_labels(tmp_path, labels_dir):
    lines = ["TestVideoFile = {};"] + [f"TestVideoFile{{end+1}}.gt_frame = [{a}:{b}];" for a, b in PED2_RANGES]
    (tmp_path / "UCSDped2.m").write_text("\n".join(lines))
    labels = read_labels(tmp_path / "UCSDped2.m", PED2_COUNTS, PED2_NAMES)
    np.testing.assert_array_equal(np.concatenate(labels), load_flat_labels(labels_dir / "frame_labels_ped2.npy"))


def test_ucsd_m_with_several_ranges_per_clip(tmp_path):
    (tmp_path / "UCSDped1.m").write_text("TestVideoFile{end+1}.gt_frame = [2:3, 6:7];\n")
    assert parse_ucsd_m(tmp_path / "UCSDped1.m") == [[(2, 3), (6, 7)]]
    labels = read_labels(tmp_path / "UCSDped1.m", [8], ["01"])
    np.testing.assert_array_equal(labels[0], [0, 1, 1, 0, 0, 1, 1, 0])


def test_liu_mat_ranges(tmp_path, labels_dir):
    gt = np.empty((1, 12), dtype=object)
    for i, (a, b) in enumerate(PED2_RANGES):
        gt[0, i] = np.array([[a], [b]], dtype=np.float64)
    savemat(tmp_path / "ped2.mat", {"gt": gt})
    labels = read_labels(tmp_path / "ped2.mat", PED2_COUNTS, PED2_NAMES)
    np.testing.assert_array_equal(np.concatenate(labels), load_flat_labels(labels_dir / "frame_labels_ped2.npy"))


def test_range_past_the_video_end(tmp_path):
    (tmp_path / "x.m").write_text("TestVideoFile{end+1}.gt_frame = [3:9];\n")
    with pytest.raises(DataError, match="range 3:9 of video 01 lies outside its 5 frames"):
        read_labels(tmp_path / "x.m", [5], ["01"])


def test_vollabel_any_pixel(tmp_path):
    masks = np.empty((1, 3), dtype=object)
    for i, on in enumerate((0, 1, 0)):
        masks[0, i] = np.pad(np.full((1, 1), on, np.uint8), 2)
    savemat(tmp_path / "1_label.mat", {"volLabel": masks})
    np.testing.assert_array_equal(load_vollabel(tmp_path / "1_label.mat"), [0, 1, 0])


def test_frame_mask_folder(tmp_path):
    np.save(tmp_path / "01_0014.npy", np.array([0, 1, 1]))
    np.save(tmp_path / "01_0015.npy", np.array([1, 0]))
    labels = read_labels(tmp_path, [3, 2], ["01_0014", "01_0015"])
    assert [x.tolist() for x in labels] == [[0, 1, 1], [1, 0]]
    with pytest.raises(DataError, match="01_0015.npy has 2 labels, video 01_0015 has 3 frames"):
        read_labels(tmp_path, [3, 3], ["01_0014", "01_0015"])


def test_other_anomalous_count_warns(labels_dir):
    flat = load_flat_labels(labels_dir / "frame_labels_ped2.npy").copy()
    flat[0] = 1
    with pytest.warns(UserWarning, match="1649 anomalous frames, the published ped2 labels have 1648"):
        cross_check_totals("ped2", split_flat(flat, PED2_COUNTS, PED2_NAMES, "x"), "x")
