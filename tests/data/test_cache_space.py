"""Free disk is checked before a frame cache is built; when it would not fit, frames are decoded on the fly."""

import shutil
from collections import namedtuple

import numpy as np
import pytest
from click.testing import CliRunner
from data_helpers import write_images

from repro.cli import main
from repro.data.cache import DecodingOnTheFly, plan_cache
from repro.data.clips import loader_workers, make_clip_dataset
from repro.data.layout import find_videos

Usage = namedtuple("Usage", "total used free")
COMMON = dict(in_frames=4, predict=True, scored_offset=4, size=16)


@pytest.fixture
def dataset(tmp_path):
    for split in ("training", "testing"):
        for v, count in enumerate((9, 7)):
            write_images(tmp_path / "campus" / split / "frames" / f"{v:02d}", count, size=24)
    np.save(tmp_path / "campus" / "testing" / "labels.npy", np.r_[np.zeros(9), np.ones(7)].astype(np.int8))
    return tmp_path


def full_disk(monkeypatch, free=10_000):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - free, free))


def test_the_plan_counts_the_bytes_of_uncached_videos_only(dataset):
    videos = find_videos(dataset, "campus", "training")
    plan = plan_cache(videos, (16, 16), False, dataset / "cache")
    assert plan.needed == (9 + 7) * 16 * 16 * 3 and plan.fits
    assert plan_cache(videos, (16, 16), True, dataset / "cache").needed == (9 + 7) * 16 * 16
    make_clip_dataset(dataset, "campus", "training", cache_dir=dataset / "cache", **COMMON)  # builds the cache
    assert plan_cache(videos, (16, 16), False, dataset / "cache").needed == 0


def test_a_cache_that_does_not_fit_is_not_built_and_frames_decode_on_the_fly(dataset, monkeypatch):
    cached = make_clip_dataset(dataset, "campus", "testing", cache_dir=dataset / "cache", **COMMON)
    full_disk(monkeypatch)
    with pytest.warns(DecodingOnTheFly, match=r"needs 0\.00 GB more in .*other, 0\.00 GB are free"):
        lazy = make_clip_dataset(dataset, "campus", "testing", cache_dir=dataset / "other", **COMMON)
    assert not (dataset / "other").exists() or not any((dataset / "other").iterdir())
    assert lazy.decodes_on_the_fly and not cached.decodes_on_the_fly
    assert len(lazy) == len(cached) == (9 - 4) + (7 - 4)
    for index in (0, len(lazy) - 1):
        for key in ("input", "target"):
            assert lazy[index][key].equal(cached[index][key])
    assert loader_workers(lazy, 0) >= 1 and loader_workers(cached, 0) == 0 and loader_workers(lazy, 3) == 3


def test_data_check_says_how_much_space_the_cache_needs(dataset, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(dataset / "cache"))
    full_disk(monkeypatch, free=2 * 10**9)
    result = CliRunner().invoke(main, ["data", "check", str(dataset), "campus", "--size", "4096"])
    assert result.exit_code == 0, result.output
    needs = 32 * 4096 * 4096 * 3 / 1e9  # 32 frames of 4096 x 4096 BGR
    folder = dataset / "cache" / "frames"
    assert f"a 4096x4096 frame cache needs {needs:.2f} GB in {folder} but 2.00 GB" in result.output
    assert '"fits": false' in result.output
    fits = CliRunner().invoke(main, ["data", "check", str(dataset), "campus", "--size", "16"])
    assert '"fits": true' in fits.output and "note:" not in fits.output
