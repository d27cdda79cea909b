"""The frame cache: decoded once, memory-mapped after, invalidated by a changed frame."""

import os

import cv2
import numpy as np
from data_helpers import write_images

from repro.data.cache import cache_key, decode_video, load_video
from repro.data.layout import read_video_folder


def test_second_load_equals_first_and_reads_the_cache(tmp_path):
    video = read_video_folder(write_images(tmp_path / "v", 5, size=12)[0].parent)
    first = load_video(video, (6, 10), False, tmp_path / "cache")
    assert first.shape == (5, 6, 10, 3) and first.dtype == np.uint8
    cached = list((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 1
    second = load_video(video, (6, 10), False, tmp_path / "cache")
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(second, decode_video(video, (6, 10), False))
    assert not second.flags.writeable  # a read-only memory map
    assert list((tmp_path / "cache").glob("*")) == cached  # no temporary files left


def test_changed_frame_invalidates(tmp_path):
    folder = write_images(tmp_path / "v", 3)[0].parent
    video = read_video_folder(folder)
    before = np.array(load_video(video, (8, 8), False, tmp_path / "cache"))
    cv2.imwrite(str(folder / "001.jpg"), np.zeros((8, 8, 3), np.uint8))
    stat = (folder / "001.jpg").stat()
    os.utime(folder / "001.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = load_video(video, (8, 8), False, tmp_path / "cache")
    assert not np.array_equal(before[1], after[1]) and after[1].max() <= 8
    np.testing.assert_array_equal(before[0], after[0])


def test_key_depends_on_size_and_colour(tmp_path):
    video = read_video_folder(write_images(tmp_path / "v", 2)[0].parent)
    keys = {cache_key(video, (8, 8), False), cache_key(video, (4, 4), False), cache_key(video, (8, 8), True)}
    assert len(keys) == 3
    assert load_video(video, (4, 4), True, tmp_path / "cache").shape == (2, 4, 4, 1)
