"""Split images that stay on disk: rows of a memory-mapped uint8 (N, C, H, W) array.

A split whose images do not fit in memory holds a :class:`MappedImages`
instead of an array. Taking a subset only composes row indices; indexing reads
just the rows asked for, so resident memory stays at a few batches however
large the dataset is (the mapped file's pages are page cache, not private).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(eq=False)
class MappedImages:
    array: np.ndarray  # (N_all, C, H, W) uint8, usually a read-only np.memmap
    rows: np.ndarray  # int64: the row of ``array`` holding each image of this split

    dtype: ClassVar[np.dtype] = np.dtype(np.uint8)
    ndim: ClassVar[int] = 4

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.array.shape[1:])

    @property
    def nbytes(self) -> int:
        return len(self.rows) * int(np.prod(self.array.shape[1:]))

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, index: np.ndarray) -> MappedImages:
        return MappedImages(self.array, self.rows[np.asarray(index, dtype=np.int64)])

    def __getitem__(self, index: int | slice | np.ndarray) -> np.ndarray:
        """The images at ``index`` (as array indexing would give them), read into memory."""
        rows = self.rows[index]
        if np.ndim(rows) == 0:
            return np.array(self.array[rows])
        # Read in file order (sequential pages for the kernel's read-ahead), then restore
        # the order asked for.
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self.array.shape[1:]), dtype=np.uint8)
        out[order] = self.array[rows[order]]
        return out
