"""Importers from the original distributions, on small fixtures (docs/data.md#the-canonical-layout)."""

import cv2
import numpy as np
import pytest
from data_helpers import write_images
from scipy.io import savemat

from repro.data.importers import (
    Job,
    extract_video,
    frame_name,
    import_avenue,
    import_shanghaitech,
    import_ucsd,
    run_jobs,
)
from repro.data.layout import DataError, find_videos


def write_avi(path, count, size=16):
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (size, size))
    for i in range(count):
        writer.write(np.full((size, size, 3), 20 * i, np.uint8))
    writer.release()


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def test_frame_names_are_zero_padded():
    assert [frame_name(0, 5), frame_name(999, 1000), frame_name(7, 1001)] == ["000.jpg", "999.jpg", "0007.jpg"]


def test_ucsd(tmp_path):
    src = tmp_path / "UCSDped1"
    write_images(src / "Train" / "Train001", 4, ext=".tif", first=1)  # UCSD numbers from 001
    write_images(src / "Test" / "Test001", 6, ext=".tif", first=1)
    write_images(src / "Test" / "Test001_gt", 6, ext=".bmp", first=1)
    write_images(src / "Test" / "Test002", 5, ext=".tif", first=1)
    (src / "UCSDped1.m").write_text(
        "TestVideoFile = {};\nTestVideoFile{end+1}.gt_frame = [2:3, 5:6];\nTestVideoFile{end+1}.gt_frame = [1:5];\n"
    )
    before = snapshot(src)
    dataset = import_ucsd(src, tmp_path / "out", name="ped1", progress=False)
    test = find_videos(tmp_path / "out", "ped1", "testing")
    assert [v.name for v in test] == ["01", "02"] and [len(v) for v in test] == [6, 5]
    assert [p.name for p in test[1].frames] == ["000.jpg", "001.jpg", "002.jpg", "003.jpg", "004.jpg"]
    assert len(find_videos(tmp_path / "out", "ped1", "training")[0]) == 4
    np.testing.assert_array_equal(np.load(dataset / "testing" / "labels.npy"), [0, 1, 1, 0, 1, 1] + [1] * 5)
    assert snapshot(src) == before  # the source is never touched


def test_avenue_videos_and_vollabel(tmp_path):
    src = tmp_path / "Avenue Dataset"
    write_avi(src / "training_videos" / "01.avi", 7)
    write_avi(src / "testing_videos" / "01.avi", 5)
    write_avi(src / "testing_videos" / "02.avi", 3)
    masks_dir = src / "ground_truth_demo" / "testing_label_mask"
    masks_dir.mkdir(parents=True)
    for n, on in ((1, [0, 0, 1, 1, 0]), (2, [1, 0, 0])):
        masks = np.empty((1, len(on)), dtype=object)
        for i, value in enumerate(on):
            masks[0, i] = np.full((4, 4), value, np.uint8)
        savemat(masks_dir / f"{n}_label.mat", {"volLabel": masks})  # 01.avi -> 1_label.mat
    before = snapshot(src)
    dataset = import_avenue(src, tmp_path / "out", progress=False)
    train = find_videos(tmp_path / "out", "avenue", "training")
    assert len(train[0]) == 7 and train[0].frames[-1].name == "006.jpg"
    assert [len(v) for v in find_videos(tmp_path / "out", "avenue", "testing")] == [5, 3]
    np.testing.assert_array_equal(np.load(dataset / "testing" / "labels.npy"), [0, 0, 1, 1, 0, 1, 0, 0])
    assert snapshot(src) == before


def test_shanghaitech(tmp_path):
    src = tmp_path / "shanghaitech"
    write_avi(src / "training" / "videos" / "01_001.avi", 4)
    write_images(src / "testing" / "frames" / "01_0014", 12, pad=1)  # 0.jpg .. 11.jpg: renumbered naturally
    (src / "testing" / "test_frame_mask").mkdir(parents=True)
    np.save(src / "testing" / "test_frame_mask" / "01_0014.npy", (np.arange(12) > 8).astype(np.int64))
    before = snapshot(src)
    dataset = import_shanghaitech(src, tmp_path / "out", progress=False)
    video = find_videos(tmp_path / "out", "shanghai", "testing")[0]
    assert [p.name for p in video.frames][9:] == ["009.jpg", "010.jpg", "011.jpg"]
    assert video.frames[10].read_bytes() == (src / "testing" / "frames" / "01_0014" / "10.jpg").read_bytes()
    assert len(find_videos(tmp_path / "out", "shanghaitech", "training")[0]) == 4
    assert np.load(dataset / "testing" / "labels.npy").tolist() == [0] * 9 + [1] * 3
    assert snapshot(src) == before


def test_extraction_is_resumable(tmp_path):
    write_avi(tmp_path / "a.avi", 3)
    write_avi(tmp_path / "b.avi", 2)
    (tmp_path / "out" / ".partial-b").mkdir(parents=True)  # an interrupted earlier run
    (tmp_path / "out" / ".partial-b" / "0.jpg").write_bytes(b"junk")
    assert extract_video(tmp_path / "a.avi", tmp_path / "out" / "a") == 3
    jobs = [Job(tmp_path / "a.avi", tmp_path / "out" / "a"), Job(tmp_path / "b.avi", tmp_path / "out" / "b")]
    assert run_jobs(jobs, progress=False) == 1  # only b was left
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b"]
    assert run_jobs(jobs, progress=False) == 0


def test_unreadable_video(tmp_path):
    (tmp_path / "bad.avi").write_bytes(b"not a video")
    with pytest.raises(DataError, match=r"bad.avi.*download it again"):
        extract_video(tmp_path / "bad.avi", tmp_path / "out")
