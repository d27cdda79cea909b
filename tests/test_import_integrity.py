"""Imports are all or nothing per dataset: other footage under an existing name is refused (or replaced whole),
a truncated video is an error naming it, and every test video has its labels and every label its video."""

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from repro.data import importers
from repro.data.importers import IMPORT_RECORD, import_videos
from repro.data.labels import read_labels
from repro.data.layout import DataError


def write_video(path: Path, frames: int, seed: int) -> None:
    """An MJPG .avi of 16x16 noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (16, 16))
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    writer.release()


def footage(folder: Path, tests: dict[str, int], seed: int) -> Path:
    """training/a.avi (6 frames) and the test videos `tests` (name -> frames), plus labels.npy over them."""
    write_video(folder / "training" / "a.avi", 6, seed)
    for i, (name, frames) in enumerate(tests.items()):
        write_video(folder / "testing" / f"{name}.avi", frames, seed + i + 1)
    np.save(folder / "labels.npy", (np.arange(sum(tests.values())) % 3 == 0).astype(np.int8))
    return folder


def digests(folder: Path) -> dict[str, str]:
    files = (p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_the_same_import_resumes_and_records_its_source(tmp_path):
    src = footage(tmp_path / "src", {"x": 5, "y": 7}, seed=0)
    dataset = import_videos(src, tmp_path / "data", "campus", labels=src / "labels.npy", progress=False)
    before = digests(dataset)
    (dataset / "testing" / "frames" / "y").rename(tmp_path / "lost")  # an interrupted import: one video missing
    import_videos(src, tmp_path / "data", "campus", labels=src / "labels.npy", progress=False)
    assert digests(dataset) == before
    assert '"source": "' + str(src.resolve()) in (dataset / IMPORT_RECORD).read_text()


def test_other_footage_under_the_same_name_is_refused_and_changes_nothing(tmp_path):
    first = footage(tmp_path / "first", {"x": 5, "y": 7}, seed=0)
    second = footage(tmp_path / "second", {"x": 6, "z": 4}, seed=9)
    dataset = import_videos(first, tmp_path / "data", "campus", labels=first / "labels.npy", progress=False)
    before = digests(dataset)
    with pytest.raises(DataError, match="already holds a dataset made from .*first.*--replace"):
        import_videos(second, tmp_path / "data", "campus", labels=second / "labels.npy", progress=False)
    assert digests(dataset) == before


def test_the_same_folder_with_other_videos_is_other_footage(tmp_path):
    src = footage(tmp_path / "src", {"x": 5}, seed=0)
    import_videos(src, tmp_path / "data", "campus", progress=False)
    write_video(src / "testing" / "x.avi", 8, seed=3)  # the file replaced by another recording
    with pytest.raises(DataError, match="already holds"):
        import_videos(src, tmp_path / "data", "campus", progress=False)


def test_replace_swaps_in_the_whole_new_dataset(tmp_path):
    first = footage(tmp_path / "first", {"x": 5, "y": 7}, seed=0)
    second = footage(tmp_path / "second", {"x": 6, "z": 4}, seed=9)
    import_videos(first, tmp_path / "data", "campus", labels=first / "labels.npy", progress=False)
    dataset = import_videos(
        second, tmp_path / "data", "campus", labels=second / "labels.npy", progress=False, replace=True
    )
    frames = dataset / "testing" / "frames"
    assert {p.name: len(list(p.iterdir())) for p in frames.iterdir()} == {"x": 6, "z": 4}
    np.testing.assert_array_equal(np.load(dataset / "testing" / "labels.npy"), np.load(second / "labels.npy"))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["campus"]  # no staging or old copy left


def test_a_dataset_made_by_hand_is_not_imported_into(tmp_path):
    src = footage(tmp_path / "src", {"x": 5}, seed=0)
    (tmp_path / "data" / "campus" / "training" / "frames" / "old").mkdir(parents=True)
    with pytest.raises(DataError, match="no import.json"):
        import_videos(src, tmp_path / "data", "campus", progress=False)


def test_a_truncated_video_is_an_error_naming_it(tmp_path):
    src = footage(tmp_path / "src", {"x": 20}, seed=0)
    video = src / "testing" / "x.avi"
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # the header still announces 20 frames; about 7 decode
    with pytest.raises(DataError, match=r"x\.avi decodes \d+ of the 20 frames its header announces: .*truncated"):
        import_videos(src, tmp_path / "data", "campus", labels=src / "labels.npy", progress=False)
    assert not (tmp_path / "data" / "campus" / "testing" / "frames" / "x").exists()


def test_an_unreadable_video_is_called_a_permission_problem(tmp_path, monkeypatch):
    video = tmp_path / "x.avi"
    video.write_bytes(b"no video here" * 10)
    monkeypatch.setattr(importers.os, "access", lambda path, mode: False)  # root reads everything: fake the denial
    with pytest.raises(DataError, match="not readable by this user .*chmod"):
        importers.extract_video(video, tmp_path / "frames")
    monkeypatch.undo()
    with pytest.raises(DataError, match="OpenCV cannot open the video"):
        importers.extract_video(video, tmp_path / "frames")


def test_frame_masks_without_a_test_video_are_an_error(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for name, frames in (("01_001", 4), ("01_002", 3)):
        np.save(masks / f"{name}.npy", np.zeros(frames, np.int8))
    assert [len(x) for x in read_labels(masks, [4, 3], ["01_001", "01_002"])] == [4, 3]
    with pytest.raises(DataError, match="frame masks for video.* 01_002 that are not test videos"):
        read_labels(masks, [4], ["01_001"])
    with pytest.raises(DataError, match="no frame mask for video.* 01_003"):
        read_labels(masks, [4, 3, 2], ["01_001", "01_002", "01_003"])


def test_replaced_footage_of_the_same_shape_is_another_dataset_for_the_run_hash(tmp_path):
    from repro.data.identity import dataset_fingerprint

    first = footage(tmp_path / "first", {"x": 5}, seed=0)
    second = footage(tmp_path / "second", {"x": 5}, seed=9)  # same names, counts and labels; other pixels
    import_videos(first, tmp_path / "data", "campus", labels=first / "labels.npy", progress=False)
    before = dataset_fingerprint(tmp_path / "data", "campus")["digest"]
    import_videos(second, tmp_path / "data", "campus", labels=second / "labels.npy", progress=False, replace=True)
    assert dataset_fingerprint(tmp_path / "data", "campus")["digest"] != before


def test_the_refusal_names_replace_and_the_cli_flag_replaces_the_dataset(tmp_path):
    from click.testing import CliRunner

    from repro.cli import main

    first = footage(tmp_path / "first", {"x": 5, "y": 7}, seed=0)
    second = footage(tmp_path / "second", {"x": 6, "z": 4}, seed=9)

    def run(src: Path, *flags: str):
        args = ["data", "import", "videos", src, tmp_path / "data", "--name", "campus", "--labels", src / "labels.npy"]
        return CliRunner().invoke(main, [str(a) for a in (*args, *flags)])

    assert run(first).exit_code == 0
    before = digests(tmp_path / "data" / "campus")
    refused = run(second)
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "pass --replace" in refused.output and digests(tmp_path / "data" / "campus") == before
    replaced = run(second, "--replace")  # the fix the line names
    assert replaced.exit_code == 0, replaced.output
    frames = tmp_path / "data" / "campus" / "testing" / "frames"
    assert {p.name: len(list(p.iterdir())) for p in frames.iterdir()} == {"x": 6, "z": 4}
    check = CliRunner().invoke(main, ["data", "check", str(tmp_path / "data"), "campus", "--task", "recon"])
    assert check.exit_code == 0, check.output
