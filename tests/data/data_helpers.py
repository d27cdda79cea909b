"""Helpers of the data tests: tiny frame folders."""

from pathlib import Path

import cv2
import numpy as np


def write_images(
    folder: Path, count: int, ext: str = ".jpg", size: int = 8, first: int = 0, pad: int = 3
) -> list[Path]:
    """`count` random images folder/<first:0pad>.ext ... of size x size BGR."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    paths = []
    for i in range(first, first + count):
        path = folder / f"{i:0{pad}d}{ext}"
        cv2.imwrite(str(path), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        paths.append(path)
    return paths
