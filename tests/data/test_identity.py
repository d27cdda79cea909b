"""A run's identity follows its data: resolved folder, video names, frame counts, label file (repro.data.identity)."""

import shutil

import numpy as np
import pytest
from data_helpers import write_images

from repro.config import config_hash, load_config
from repro.data.identity import data_identity, dataset_fingerprint
from repro.data.synthetic import world_fingerprint


def make_dataset(root, name="campus", train=(6, 5), test=(7, 8), seed=0):
    """`<root>/<name>` in the canonical layout with 8x8 frames and random 0/1 labels; returns the folder."""
    for split, counts in (("training", train), ("testing", test)):
        for v, count in enumerate(counts):
            write_images(root / name / split / "frames" / f"{v:02d}", count)
    labels = np.random.default_rng(seed).integers(0, 2, sum(test)).astype(np.int8)
    np.save(root / name / "testing" / "labels.npy", labels)
    return root / name


def campus_config(root, *extra):
    return load_config("synthetic", ["data.name=campus", f"data.root={root}", *extra])


def test_fingerprint_lists_videos_and_frame_counts_and_hashes_the_labels(tmp_path):
    folder = make_dataset(tmp_path)
    fingerprint = dataset_fingerprint(tmp_path, "campus")
    assert fingerprint["path"] == str(folder.resolve())
    assert fingerprint["videos"] == {"training": [("00", 6), ("01", 5)], "testing": [("00", 7), ("01", 8)]}
    assert fingerprint["anomaly_types_sha256"] == "missing" and len(fingerprint["digest"]) == 16


@pytest.mark.parametrize(
    "edit",
    [
        lambda folder: np.save(folder / "testing" / "labels.npy", 1 - np.load(folder / "testing" / "labels.npy")),
        lambda folder: write_images(folder / "training" / "frames" / "01", 1, first=5),  # one frame more
        lambda folder: (folder / "testing" / "frames" / "01").rename(folder / "testing" / "frames" / "09"),
        lambda folder: np.save(folder / "testing" / "anomaly_types.npy", np.zeros(15, np.int8)),
    ],
    ids=["label edited", "frame added", "video renamed", "anomaly types added"],
)
def test_editing_the_data_changes_the_run_hash(tmp_path, edit):
    folder = make_dataset(tmp_path)
    before = config_hash(campus_config(tmp_path))
    assert config_hash(campus_config(tmp_path)) == before  # stable while nothing changes
    edit(folder)
    assert config_hash(campus_config(tmp_path)) != before


def test_a_relative_root_means_the_folder_it_names_from_where_it_is_read(tmp_path, monkeypatch):
    for place, seed in (("a", 0), ("b", 1)):
        make_dataset(tmp_path / place / "data", seed=seed)
    hashes = []
    for place in ("a", "b"):
        monkeypatch.chdir(tmp_path / place)
        hashes.append(config_hash(campus_config("data")))
    assert hashes[0] != hashes[1]
    shutil.copytree(tmp_path / "a", tmp_path / "c")  # the same bytes elsewhere: a moved dataset is another run
    monkeypatch.chdir(tmp_path / "c")
    assert config_hash(campus_config("data")) not in hashes


def test_synthetic_identity_is_its_preset_seed_and_world_fingerprint():
    identity = data_identity("synthetic", None, None, "tiny", 3)
    assert identity == f"synthetic-tiny-seed3-{world_fingerprint('tiny')}"
    assert data_identity("ped2", None, None, "single", 0) is None  # no location, nothing to fingerprint
    assert config_hash(load_config("synthetic", ["data.synth_seed=1"])) != config_hash(load_config("synthetic"))


def test_an_explicit_label_file_is_part_of_the_identity(tmp_path):
    make_dataset(tmp_path)
    np.save(tmp_path / "other.npy", np.zeros(15, np.int8))
    own = config_hash(campus_config(tmp_path))
    other = config_hash(campus_config(tmp_path, f"data.labels={tmp_path / 'other.npy'}"))
    assert own != other
    np.save(tmp_path / "other.npy", np.ones(15, np.int8))
    assert config_hash(campus_config(tmp_path, f"data.labels={tmp_path / 'other.npy'}")) != other


def test_a_missing_dataset_still_has_an_identity(tmp_path):
    identity = data_identity("campus", str(tmp_path), None, "single", 0)
    assert identity == f"{tmp_path.resolve() / 'campus'}|missing"
