"""Discovery and validation of the canonical layout; clear errors for bad input (docs/data.md#the-canonical-layout)."""

import pytest
from data_helpers import write_images

from repro.data.cache import decode_frame
from repro.data.layout import DataError, dataset_dir, find_videos, natural_key


def test_videos_and_frames_sorted_naturally(tmp_path):
    frames = tmp_path / "ped2" / "testing" / "frames"
    for video in ("10", "2", "1"):
        write_images(frames / video, 12, pad=1)  # 0.jpg, 1.jpg, ..., 11.jpg
    videos = find_videos(tmp_path, "ped2", "testing")
    assert [v.name for v in videos] == ["1", "2", "10"]
    assert [p.name for p in videos[0].frames][-3:] == ["9.jpg", "10.jpg", "11.jpg"]
    assert natural_key("v2") < natural_key("v10")


def test_shanghai_is_an_alias(tmp_path):
    (tmp_path / "shanghaitech").mkdir()
    assert dataset_dir(tmp_path, "shanghai") == tmp_path / "shanghaitech"


def test_missing_folder_names_path_and_fix(tmp_path):
    with pytest.raises(DataError, match=r"ped2 does not exist.*repro data import"):
        find_videos(tmp_path, "ped2", "training")
    (tmp_path / "ped2").mkdir()
    with pytest.raises(DataError, match=r"missing folder .*ped2/training/frames"):
        find_videos(tmp_path, "ped2", "training")


def test_empty_video(tmp_path):
    (tmp_path / "ped2" / "training" / "frames" / "01").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty video .*frames/01"):
        find_videos(tmp_path, "ped2", "training")


def test_mixed_extensions(tmp_path):
    folder = tmp_path / "ped2" / "training" / "frames" / "01"
    write_images(folder, 2)
    write_images(folder, 1, ext=".png", first=2)
    with pytest.raises(DataError, match=r"frames/01 mixes extensions \['.jpg', '.png'\]"):
        find_videos(tmp_path, "ped2", "training")


@pytest.mark.parametrize("first, message", [(0, "frame 2 is 003.jpg"), (1, "frame 0 is 001.jpg")])
def test_gap_or_one_based_numbering(tmp_path, first, message):
    folder = tmp_path / "ped2" / "training" / "frames" / "01"
    write_images(folder, 4, first=first)
    if first == 0:
        (folder / "002.jpg").unlink()
    with pytest.raises(DataError, match=rf"frames/01: frame numbers must run .* {message}.*renumber"):
        find_videos(tmp_path, "ped2", "training")


def test_truncated_and_unreadable_images(tmp_path):
    jpeg, png = write_images(tmp_path, 1, size=32)[0], tmp_path / "bad.png"
    jpeg.write_bytes(jpeg.read_bytes()[:-40])
    with pytest.raises(DataError, match=rf"truncated image {jpeg}.*again"):
        decode_frame(jpeg, (8, 8), False)
    png.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=rf"unreadable image {png}"):
        decode_frame(png, (8, 8), False)
