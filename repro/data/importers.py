"""Importers: the original distributions -> the canonical layout (docs/data.md#the-canonical-layout). Sources are only
read.

- UCSD:   <src>/Train/Train001/001.tif, <src>/Test/Test001/001.tif (Test001_gt/ skipped), <src>/UCSDped2.m
- Avenue: <src>/training_videos/01.avi, <src>/testing_videos/01.avi,
          <src>/ground_truth_demo/testing_label_mask/1_label.mat (volLabel; not the literature's labels)
- ShanghaiTech: <src>/training/videos/01_001.avi, <src>/testing/frames/01_0014/000.jpg,
          <src>/testing/test_frame_mask/01_0014.npy
- Your own videos: <src>/training/<video>.mp4, <src>/testing/<video>.mp4 (.avi, .mov, ...), labels given apart

Every video becomes `<dst>/<name>/<split>/frames/<video>/000.jpg ...` (0-based, zero-padded to
max(3, digits) places). Each video is written into a temporary folder and renamed when complete, so an
interrupted import resumes by skipping the finished videos. Videos are converted in parallel threads
(OpenCV releases the GIL). Labels are aligned with the imported frames but not compared with the published
totals here (a partial download imports too): `repro data check` does that.

An import is all or nothing per dataset: `<dst>/<name>/import.json` records where its frames came from (the
form, the source folder and a fingerprint of its files). Resuming the same import skips the finished videos; an
import of other footage under an existing name is refused unless `replace=True`, which imports into a staging
folder and swaps it in whole at the end. A video that decodes fewer frames than its header promises (a
truncated file) is an error naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write
from .cache import save_atomic, write_image
from .labels import load_vollabel, read_labels, resolve_label_file
from .layout import IMAGE_EXTENSIONS, DataError, natural_key

JPEG_QUALITY = 95
PARTIAL = ".partial-"
REPLACED = ".replaced-"
IMPORT_RECORD = "import.json"  # in the dataset folder: the form, source and fingerprint its frames came from
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True)
class Job:
    """One video to convert: a video file or a folder of images -> `target` frame folder."""

    source: Path
    target: Path


def frame_name(index: int, count: int, suffix: str = ".jpg") -> str:
    """Zero-padded 0-based frame name: width max(3, digits of the last index)."""
    return f"{index:0{max(3, len(str(count - 1)))}d}{suffix}"


def _unreadable(source: Path) -> str:
    """Why a source file cannot be read, with the fix: a permission problem is not a damaged file."""
    if not os.access(source, os.R_OK):
        return f"{source} is not readable by this user (permission denied). Fix: chmod a+r it, or copy it"
    return f"OpenCV cannot open the video {source}. Fix: check the file plays (re-encode or download it again)"


def extract_video(source: Path, target: Path) -> int:
    """Decode a video file with OpenCV into `target`/000.jpg ...; returns the number of frames. A video that
    decodes fewer frames than its header announces is truncated: a DataError naming it, nothing written."""
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise DataError(_unreadable(source))
    announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # 0 when the container does not say
    temporary = _fresh_partial(target)
    count = 0
    try:
        ok, frame = capture.read()
        while ok:
            write_image(temporary / f"{count}.jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            count += 1
            ok, frame = capture.read()
    finally:
        capture.release()
    if count == 0 or count < announced:
        shutil.rmtree(temporary)
        found = "has no decodable frames"
        if count:
            found = f"decodes {count} of the {announced} frames its header announces"
        raise DataError(
            f"the video {source} {found}: the file is truncated or damaged. Fix: re-encode it (e.g. ffmpeg -i "
            "in.mp4 out.mp4) or download it again, then rerun the import"
        )
    for i in range(count):  # widths are known only at the end
        os.rename(temporary / f"{i}.jpg", temporary / frame_name(i, count))
    os.rename(temporary, target)
    return count


def convert_frames(source: Path, target: Path) -> int:
    """A folder of images (any numbering, natural order) -> `target`/000.jpg ...: JPEGs are copied, others
    re-encoded as JPEG. Returns the number of frames."""
    files = _sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"empty video {source}: no image files. Fix: re-download this video's frames")
    temporary = _fresh_partial(target)
    for i, path in enumerate(files):
        out = temporary / frame_name(i, len(files))
        if path.suffix.lower() in (".jpg", ".jpeg"):
            shutil.copyfile(path, out)
            continue
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            unreadable = not os.access(path, os.R_OK)
            fix = "chmod a+r it" if unreadable else "download this video's frames again"
            raise DataError(f"unreadable image {path}{' (permission denied)' if unreadable else ''}. Fix: {fix}")
        write_image(out, image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    os.rename(temporary, target)
    return len(files)


def _fresh_partial(target: Path) -> Path:
    temporary = target.with_name(PARTIAL + target.name)
    shutil.rmtree(temporary, ignore_errors=True)  # left by an interrupted import
    temporary.mkdir(parents=True)
    return temporary


def _read_record(dataset: Path) -> dict | None:
    path = dataset / IMPORT_RECORD
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return {"source": f"unknown (unreadable {path})"}


def _source_record(form: str, src: Path, dataset: Path, jobs: Sequence[Job]) -> dict:
    """What identifies an import: its form, source folder and a digest of each source's name and size (a
    video file's bytes, a frame folder's image count), so other footage under the same path differs too."""
    digest = hashlib.sha256()
    for job in jobs:
        size = sum(1 for _ in job.source.iterdir()) if job.source.is_dir() else job.source.stat().st_size
        digest.update(f"{job.target.relative_to(dataset)}<-{job.source.name}:{size}\n".encode())
    return {"form": form, "source": str(src.resolve()), "fingerprint": digest.hexdigest()[:16]}


def _workspace(dataset: Path, record: dict, replace: bool) -> Path:
    """Where an import writes: the dataset itself when it is new or this same import resumed; with `replace`, a
    staging folder that `_complete` swaps in whole. Other footage under an existing dataset is refused."""
    previous = _read_record(dataset)
    holds_frames = any((dataset / split / "frames").is_dir() for split in ("training", "testing"))
    if previous == record or (previous is None and not holds_frames):
        dataset.mkdir(parents=True, exist_ok=True)
        atomic_write(dataset / IMPORT_RECORD, json.dumps(record, indent=2) + "\n")
        return dataset
    if not replace:
        origin = f"{previous['source']}" if previous else "an earlier import or by hand (it has no import.json)"
        raise DataError(
            f"{dataset} already holds a dataset made from {origin}; importing {record['source']} into it would mix "
            "two footages (nothing was changed). Fix: import under another name (--name) or into another DST, "
            "or pass --replace to replace the whole dataset"
        )
    staging = dataset.with_name(PARTIAL + dataset.name)
    if _read_record(staging) != record:  # left by an interrupted replace of other footage
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    atomic_write(staging / IMPORT_RECORD, json.dumps(record, indent=2) + "\n")
    return staging


def _complete(work: Path, dataset: Path) -> Path:
    """Swap a finished staging folder in place of the dataset it replaces (the old one is deleted after)."""
    if work != dataset:
        aside = dataset.with_name(REPLACED + dataset.name)
        shutil.rmtree(aside, ignore_errors=True)
        if dataset.exists():
            os.rename(dataset, aside)
        os.rename(work, dataset)
        shutil.rmtree(aside, ignore_errors=True)
    return dataset


def _convert(
    form: str, src: Path, dataset: Path, jobs: Sequence[Job], replace: bool, workers: int | None, progress: bool
) -> Path:
    """Claim the dataset for this import (`_workspace`), convert its videos there; returns the folder written."""
    work = _workspace(dataset, _source_record(form, src, dataset, jobs), replace)
    run_jobs([Job(job.source, work / job.target.relative_to(dataset)) for job in jobs], workers, progress)
    return work


def run_jobs(jobs: Sequence[Job], workers: int | None = None, progress: bool = True) -> int:
    """Convert every job whose target does not exist yet, in parallel; returns how many were converted."""
    pending = [job for job in jobs if not job.target.exists()]
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        for _ in tqdm(pool.map(convert_job, pending), total=len(pending), desc="videos", disable=not progress):
            pass
    return len(pending)


def convert_job(job: Job) -> int:
    convert = convert_frames if job.source.is_dir() else extract_video
    return convert(job.source, job.target)


def _sorted(paths) -> list[Path]:
    return sorted(paths, key=lambda p: natural_key(p.name))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"missing {path} ({what}). Fix: point SRC at the unpacked original distribution")
    return path


def _write_labels(dataset: Path, per_video: list[np.ndarray]) -> Path:
    path = dataset / "testing" / "labels.npy"
    save_atomic(path, np.concatenate(per_video).astype(np.int8))
    return path


def _test_counts(dataset: Path) -> tuple[list[int], list[str]]:
    frames = dataset / "testing" / "frames"
    folders = _sorted(p for p in frames.iterdir() if p.is_dir() and not p.name.startswith(PARTIAL))
    return [sum(1 for _ in f.iterdir()) for f in folders], [f.name for f in folders]


def import_ucsd(
    src: str | Path,
    dst: str | Path,
    name: str = "ped2",
    workers: int | None = None,
    progress: bool = True,
    replace: bool = False,
) -> Path:
    """UCSDped1/2 -> `<dst>/<name>`; videos TrainNNN / TestNNN become NN; labels from the `.m` file."""
    src, dataset = Path(src), Path(dst) / name
    jobs = []
    for split, folder, prefix in (("training", "Train", "Train"), ("testing", "Test", "Test")):
        videos = _sorted(
            p
            for p in _require(src / folder, f"UCSD {folder} folders").iterdir()
            if p.is_dir() and p.name.startswith(prefix) and not p.name.endswith("_gt")
        )
        jobs += [Job(v, dataset / split / "frames" / f"{int(v.name[len(prefix) :]):02d}") for v in videos]
    work = _convert("ucsd", src, dataset, jobs, replace, workers, progress)
    ground_truth = _sorted(src.glob("*.m"))
    if ground_truth:
        counts, names = _test_counts(work)
        _write_labels(work, read_labels(ground_truth[0], counts, names))
    return _complete(work, dataset)


def import_avenue(
    src: str | Path,
    dst: str | Path,
    labels: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    replace: bool = False,
) -> Path:
    """CUHK Avenue -> `<dst>/avenue`. Labels from `labels` (the published .npy, "published" for the copy shipped
    with repro, or Liu's avenue.mat) when given, else from the volLabel masks (any pixel set; NOT comparable with
    the literature)."""
    src, dataset = Path(src), Path(dst) / "avenue"
    jobs = []
    for split, folder in (("training", "training_videos"), ("testing", "testing_videos")):
        videos = _sorted(_require(src / folder, "Avenue videos").glob("*.avi"))
        jobs += [Job(v, dataset / split / "frames" / v.stem) for v in videos]
    work = _convert("avenue", src, dataset, jobs, replace, workers, progress)
    counts, names = _test_counts(work)
    if labels is not None:
        _write_labels(work, read_labels(resolve_label_file(labels, "avenue"), counts, names))
        return _complete(work, dataset)
    masks = src / "ground_truth_demo" / "testing_label_mask"
    if masks.is_dir():
        per_video = [load_vollabel(_require(masks / f"{int(n)}_label.mat", "Avenue volLabel")) for n in names]
        for name, count, label in zip(names, counts, per_video):
            if len(label) != count:
                raise DataError(
                    f"{masks}/{int(name)}_label.mat has {len(label)} masks, video {name} has {count} frames"
                )
        _write_labels(work, per_video)
    return _complete(work, dataset)


def import_shanghaitech(
    src: str | Path, dst: str | Path, workers: int | None = None, progress: bool = True, replace: bool = False
) -> Path:
    """ShanghaiTech -> `<dst>/shanghaitech`: training videos decoded, test frames renumbered, frame masks joined."""
    src, dataset = Path(src), Path(dst) / "shanghaitech"
    videos = _sorted(_require(src / "training" / "videos", "ShanghaiTech training videos").glob("*.avi"))
    tests = _sorted(p for p in _require(src / "testing" / "frames", "ShanghaiTech test frames").iterdir() if p.is_dir())
    jobs = [Job(v, dataset / "training" / "frames" / v.stem) for v in videos]
    jobs += [Job(t, dataset / "testing" / "frames" / t.name) for t in tests]
    work = _convert("shanghaitech", src, dataset, jobs, replace, workers, progress)
    masks = src / "testing" / "test_frame_mask"
    if masks.is_dir():
        counts, names = _test_counts(work)
        _write_labels(work, read_labels(masks, counts, names))
    return _complete(work, dataset)


def import_videos(
    src: str | Path,
    dst: str | Path,
    name: str,
    labels: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    replace: bool = False,
) -> Path:
    """Your own footage -> `<dst>/<name>`: `<src>/training/<video>.mp4` and `<src>/testing/<video>.mp4` (any
    extension OpenCV reads, see VIDEO_EXTENSIONS) become frame folders named by the file's stem; `labels`
    (a flat .npy over the sorted test videos, or a folder of <video>.npy masks) becomes testing/labels.npy.
    `replace`: replace an existing dataset of that name made from other footage (refused otherwise)."""
    src, dataset = Path(src), Path(dst) / name
    jobs = []
    for split in ("training", "testing"):
        folder = _require(src / split, f"the {split} videos, <video>.mp4 or .avi")
        videos = _sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not videos:
            raise DataError(
                f"{folder} holds no video files ({', '.join(VIDEO_EXTENSIONS)}). Fix: put the {split} videos there"
            )
        jobs += [Job(v, dataset / split / "frames" / v.stem) for v in videos]
    work = _convert("videos", src, dataset, jobs, replace, workers, progress)
    if labels is not None:
        counts, names = _test_counts(work)
        _write_labels(work, read_labels(resolve_label_file(labels, name), counts, names))
    return _complete(work, dataset)


IMPORTERS = {"ucsd": import_ucsd, "avenue": import_avenue, "shanghaitech": import_shanghaitech, "videos": import_videos}
