"""Frame-level ground truth in every published form, split per video and cross-checked
(docs/method.md#scoring-and-evaluation, docs/data.md#labels).

Forms: the flat concatenated `.npy` (1-D or (1, N)); ShanghaiTech `test_frame_mask/<video>.npy`; UCSD's
`UCSDped2.m` ranges; Liu et al.'s `ped2.mat` / `avenue.mat` (`gt`: per video a 2xK array of 1-based
inclusive ranges); Avenue's `volLabel` pixel masks. The volLabel form ("any pixel anomalous") is NOT the
literature's Avenue labels (they differ on video 18): use the .npy or `avenue.mat` for comparable numbers.
"""

from __future__ import annotations

import importlib.resources
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .layout import DataError, canonical_name, dataset_dir, natural_key

# (test frames, anomalous frames, per-video test frame counts or None) of the published label files.
PUBLISHED = {
    "ped2": (2010, 1648, (180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180)),
    "avenue": (
        15324,
        3867,
        (1439, 1211, 923, 947, 1007, 1283, 605, 36, 1175, 841, 472, 1271, 549, 507, 1001, 740, 426, 294, 248, 273, 76),
    ),
    "shanghaitech": (40791, 17326, None),
}
NPY_MAGIC = b"\x93NUMPY"
Ranges = list[tuple[int, int]]  # 1-based inclusive (start, end) anomalous ranges of one video
PUBLISHED_SOURCE = "published"  # as a label source: the dataset's published file, shipped with repro
PUBLISHED_FILES = {
    "ped2": "frame_labels_ped2.npy",
    "avenue": "frame_labels_avenue.npy",
    "shanghaitech": "frame_labels_shanghai.npy",
}  # package data: repro/data/published/


def published_label_file(name: str) -> Path:
    """The published flat label file of `name` (docs/data.md#labels), shipped as package data."""
    if name not in PUBLISHED_FILES:
        raise DataError(
            f"no published labels for dataset {name!r}; they exist for {', '.join(PUBLISHED_FILES)}. "
            "Fix: give the label file's path instead of 'published'"
        )
    return Path(importlib.resources.files("repro.data") / "published" / PUBLISHED_FILES[name])


def resolve_label_file(source: str | Path, name: str) -> Path:
    """A label source as a path: "published" is the shipped file of dataset `name`, anything else a path."""
    return published_label_file(name) if str(source) == PUBLISHED_SOURCE else Path(source)


def load_npy(path: Path, expected: str) -> np.ndarray:
    """The array in a .npy file; a DataError naming the file when it is empty, truncated, text or pickled."""
    with open(path, "rb") as handle:
        head = handle.read(len(NPY_MAGIC))
    problem = (
        "it is empty" if not head else None if head == NPY_MAGIC else "no .npy header: text, pickled or other data"
    )
    if problem is None:
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as error:  # a header, then less data than it announces
            problem = str(error)
    raise DataError(
        f"{path} is not a readable .npy array ({problem}); expected {expected}. "
        "Fix: write it with numpy.save (no pickles), or copy it again"
    )


def load_flat_labels(path: str | Path) -> np.ndarray:
    """A concatenated label file as a flat int8 0/1 array (N,); accepts (N,) and (1, N)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label file {path} does not exist. Fix: pass the published frame_labels_<name>.npy")
    array = load_npy(path, "0/1 per test frame, shape (N,) or (1, N)")
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise DataError(f"label file {path} has shape {array.shape}; expected (N,) or (1, N) of 0/1 per frame")
    return _binary(array, path)


def _binary(array: np.ndarray, source: Path | str) -> np.ndarray:
    values = set(np.unique(array).tolist())
    if not values <= {0, 1}:
        raise DataError(f"labels in {source} hold values {sorted(values)[:5]}; expected only 0 and 1")
    return array.astype(np.int8)


def load_frame_masks(folder: str | Path) -> dict[str, np.ndarray]:
    """ShanghaiTech's `test_frame_mask/<video>.npy` files: video name -> (T,) int8, in natural order."""
    folder = Path(folder)
    files = sorted(folder.glob("*.npy"), key=lambda p: natural_key(p.name))
    if not files:
        raise DataError(f"{folder} holds no <video>.npy frame masks (ShanghaiTech's testing/test_frame_mask)")
    return {path.stem: _binary(load_npy(path, "0/1 per frame of the video").reshape(-1), path) for path in files}


def parse_ucsd_m(path: str | Path) -> list[Ranges]:
    """UCSD's `UCSDped{1,2}.m`: per clip the 1-based inclusive ranges of `gt_frame = [61:180, ...];`."""
    path = Path(path)
    clips = []
    for line in path.read_text().splitlines():
        match = re.search(r"gt_frame\s*=\s*\[(.*?)\]", line)
        if match:
            clips.append([(int(a), int(b)) for a, b in re.findall(r"(\d+)\s*:\s*(\d+)", match.group(1))])
    if not clips:
        raise DataError(f"{path} has no `TestVideoFile{{end+1}}.gt_frame = [a:b];` lines (UCSD ground truth)")
    return clips


def load_liu_mat(path: str | Path) -> list[Ranges]:
    """Liu et al.'s `ped2.mat` / `avenue.mat`: variable `gt`, per video a 2xK array of [start; end], 1-based."""
    from scipy.io import loadmat

    gt = loadmat(str(path), squeeze_me=False).get("gt")
    if gt is None:
        raise DataError(f"{path} has no variable 'gt'; expected Liu et al.'s ped2.mat / avenue.mat")
    return [[(int(s), int(e)) for s, e in np.asarray(cell).reshape(2, -1).T] for cell in gt.reshape(-1)]


def load_vollabel(path: str | Path) -> np.ndarray:
    """Avenue `<N>_label.mat` (`volLabel`, a cell of HxW masks) -> (T,) int8, 1 where any pixel is set.

    Not comparable with the literature's Avenue labels (see the module docstring).
    """
    from scipy.io import loadmat

    volume = loadmat(str(path)).get("volLabel")
    if volume is None:
        raise DataError(f"{path} has no variable 'volLabel'; expected Avenue's testing_label_mask/<N>_label.mat")
    return np.array([np.asarray(mask).any() for mask in volume.reshape(-1)], dtype=np.int8)


def ranges_to_labels(ranges: Sequence[Ranges], counts: Sequence[int], names: Sequence[str], source) -> list[np.ndarray]:
    """1-based inclusive ranges per video -> (T,) int8 per video; a range past the end names the video."""
    if len(ranges) != len(counts):
        raise DataError(f"{source} describes {len(ranges)} videos but the test split has {len(counts)}")
    labels = []
    for video_ranges, count, name in zip(ranges, counts, names):
        frame = np.arange(1, count + 1)  # (T,) 1-based
        label = np.zeros(count, dtype=np.int8)
        for start, end in video_ranges:
            if not 1 <= start <= end <= count:
                raise DataError(f"{source}: range {start}:{end} of video {name} lies outside its {count} frames")
            label[(frame >= start) & (frame <= end)] = 1
        labels.append(label)
    return labels


def split_flat(flat: np.ndarray, counts: Sequence[int], names: Sequence[str], source) -> list[np.ndarray]:
    """Cut a concatenated label array into per-video arrays by the videos' frame counts."""
    total = int(sum(counts))
    if len(flat) != total:
        which = "longer" if len(flat) > total else "shorter"
        raise DataError(
            f"{source} holds {len(flat)} labels, {which} than the {total} test frames of {len(counts)} videos "
            f"({names[0]}..{names[-1]}). Fix: use the label file of this dataset, or check for missing frames"
        )
    return np.split(flat, np.cumsum(counts)[:-1])


def cross_check_counts(name: str, counts: Sequence[int], names: Sequence[str]) -> None:
    """Compare the test videos' frame counts with the published ones (docs/data.md#labels); name the first mismatch."""
    published = PUBLISHED.get(name)
    if published is None or published[2] is None:
        return
    expected = published[2]
    if len(counts) != len(expected):
        raise DataError(f"{name} has {len(expected)} published test videos, found {len(counts)}")
    for video, found, wanted in zip(names, counts, expected):
        if found != wanted:
            raise DataError(
                f"{name} test video {video} has {found} frames; the published labels expect {wanted}. "
                "Fix: extract that video again"
            )


def cross_check_totals(name: str, labels: Sequence[np.ndarray], source) -> None:
    """Compare the label totals with the published file's (docs/data.md#labels) and say which file disagrees.

    Another frame total is an error (the labels cannot align); another anomalous count only warns, since
    a different labelling of the same frames (Avenue's volLabel masks) is usable but not comparable.
    """
    published = PUBLISHED.get(name)
    if published is None:
        return
    frames, anomalous = sum(len(x) for x in labels), int(sum(int(x.sum()) for x in labels))
    if frames != published[0]:
        raise DataError(
            f"{source}: {frames} test frames, but the published {name} labels cover {published[0]}. "
            "Fix: check the test split for missing or extra videos"
        )
    if anomalous != published[1]:
        warnings.warn(
            f"{source}: {anomalous} anomalous frames, the published {name} labels have {published[1]}; "
            "AUCs will not be comparable with the literature (use the published label file)",
            stacklevel=2,
        )


def read_labels(source: str | Path, counts: Sequence[int], names: Sequence[str]) -> list[np.ndarray]:
    """Per-video (T,) int8 labels from any published form, chosen by the file's suffix or a folder of masks."""
    source = Path(source)
    if source.is_dir():
        masks = load_frame_masks(source)
        missing = [n for n in names if n not in masks]
        if missing:
            raise DataError(f"{source} has no frame mask for video(s) {', '.join(missing[:5])}")
        unmatched = [n for n in masks if n not in names]
        if unmatched:
            raise DataError(
                f"{source} has frame masks for video(s) {', '.join(unmatched[:5])} that are not test videos "
                f"({len(names)} found). Fix: add those videos to the test footage, or remove their masks"
            )
        for name, count in zip(names, counts):
            if len(masks[name]) != count:
                raise DataError(f"{source}/{name}.npy has {len(masks[name])} labels, video {name} has {count} frames")
        return [masks[name] for name in names]
    if source.suffix == ".m":
        return ranges_to_labels(parse_ucsd_m(source), counts, names, source)
    if source.suffix == ".mat":
        return ranges_to_labels(load_liu_mat(source), counts, names, source)
    if source.suffix == ".npy":
        return split_flat(load_flat_labels(source), counts, names, source)
    raise DataError(
        f"unknown label file {source}; allowed: .npy (flat), .m (UCSD), .mat (Liu), a test_frame_mask folder"
    )


def dataset_label_file(root: str | Path, name: str, labels: str | Path | None = None) -> Path:
    """The test split's labels: `labels` when given, else `<root>/<name>/testing/labels.npy`; a DataError if absent."""
    own = dataset_dir(root, name) / "testing" / "labels.npy"
    source = resolve_label_file(labels, canonical_name(name)) if labels is not None else own
    if not source.exists():
        raise DataError(
            f"missing label file {source}: the test split is scored against 0/1 per test frame (sorted "
            "videos concatenated). Fix: put the dataset's labels there (`repro data import` writes them), "
            "or name a label file with data.labels=FILE (--labels for `repro data check`)"
        )
    return source


def load_test_labels(
    name: str, counts: Sequence[int], names: Sequence[str], source: str | Path, check_published: bool = True
) -> list[np.ndarray]:
    """Per-video labels for a dataset's test split, cross-checked against the published counts and totals.
    `source` may be "published": the dataset's published file (ped2, avenue, shanghaitech)."""
    source = resolve_label_file(source, name)
    if check_published:
        cross_check_counts(name, counts, names)
    labels = read_labels(source, counts, names)
    if check_published:
        cross_check_totals(name, labels, source)
    return labels
