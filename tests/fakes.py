"""Fakes shared by the tests: of the operating system (atomic files, the CLI's error path) and a tiny dataset."""

import errno
import os

import torch

from repro.record import SCORES, RunMetrics


class FullFile:
    """A file on a file system with no space left: every write fails as the kernel's does (no file name)."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


class PredictionClips(torch.utils.data.Dataset):
    """Two videos of four random prediction clips (4 input frames, 32x32) in the data layer's format, the last
    clip of each video labelled anomalous."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.items = [
            {
                "input": torch.rand(4, 3, 32, 32, generator=g) * 2 - 1,
                "target": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1,
                "video": i // 4,
                "frame": i % 4,
                "label": int(i % 4 == 3),
                "anomaly_type": 0,
            }
            for i in range(8)
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def metrics_record(default: dict, oracle: dict | None = None) -> RunMetrics:
    """The record (metrics.json) of a run with one evaluated epoch: its default selection `default` (epoch,
    lambda, the scores, optional per_type and memory) and its oracle (the default's numbers if None)."""
    epoch = {"lambdas": {f"{default['lambda']:g}": {key: default[key] for key in SCORES}}}
    epoch |= {key: default[key] for key in ("per_type", "memory") if key in default}
    return RunMetrics.from_json(
        {
            "default": default,
            "oracle": default if oracle is None else oracle,
            "epochs": {str(default["epoch"]): epoch},
            "timings": {"train_seconds": 1.0, "evaluate_seconds": 0.5},
            "record": {"host": "test"},
        }
    )
