"""Annotation-file primitives shared by every benchmark reader and the training-set readers.

read_number_rows / read_flags parse tables and label files (errors name the file and line);
check_boxes validates ground truth; image_files / numbered_frames form frame paths.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')

SPLIT_RE = re.compile(r'[,\s]+')


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """Returns Path(path); FileNotFoundError naming it (and `what`) if it is not a folder."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f'{what} not found: {path}')
    return path


def require_file(path: str | os.PathLike, what: str) -> Path:
    """Returns Path(path); FileNotFoundError naming it (and `what`) if it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{what} not found: {path}')
    return path


def data_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines; trailing blanks dropped."""
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
    return [(i + 1, line.strip()) for i, line in enumerate(lines) if line.strip()]


def read_number_rows(path: str | os.PathLike, widths: Iterable[int] = (4,),
                     what: str = 'ground-truth file') -> np.ndarray:
    """Reads a table of numbers separated by ',', tabs or spaces (mixed allowed).

    Returns: [N, k] float64, one row per non-blank line; 'NaN' parses to NaN.
    Raises: FileNotFoundError naming the file; ValueError naming file and line when a line has a
      number of values not in `widths` or differing from the first line, or a non-number.
    """
    path = require_file(path, what)
    widths = tuple(widths)
    rows = []
    for line_no, text in data_lines(path):
        tokens = [t for t in SPLIT_RE.split(text) if t]
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise ValueError(f'{path}, line {line_no}: not a list of numbers: {text!r}') from None
        expected = len(rows[0]) if rows else None
        if len(values) not in widths or (expected is not None and len(values) != expected):
            want = expected if expected is not None else ' or '.join(map(str, widths))
            raise ValueError(f'{path}, line {line_no}: expected {want} values, '
                             f'got {len(values)}: {text!r}')
        rows.append(values)
    if not rows:
        raise ValueError(f'{path}: empty annotation file')
    return np.asarray(rows, np.float64)


def read_flags(path: str | os.PathLike, count: int | None = None,
               what: str = 'label file') -> np.ndarray:
    """Reads integer labels, one per frame, separated by ',', newlines or spaces.

    Returns: [N] int64. Raises ValueError naming the file when a token is not an integer or when
    `count` is given and N differs from it.
    """
    path = require_file(path, what)
    tokens = [t for t in SPLIT_RE.split(path.read_text(encoding='utf-8', errors='replace')) if t]
    try:
        flags = np.asarray([int(float(t)) for t in tokens], np.int64)
    except ValueError:
        raise ValueError(f'{path}: labels must be integers') from None
    if count is not None and len(flags) != count:
        raise ValueError(f'{path}: {len(flags)} labels but {count} frames')
    return flags


def check_boxes(boxes: np.ndarray, path: str | os.PathLike, visible: np.ndarray | None = None,
                annotated: np.ndarray | None = None,
                line_numbers: np.ndarray | None = None) -> None:
    """Validates ground truth; raises ValueError naming `path` and the 1-based line.

    boxes: [T, 4] (x, y, w, h). visible: [T] bool or None (None: every annotated frame should be
    visible). annotated: [T] bool, rows that come from the file (default all). line_numbers: [T]
    line of each row in the file (default row + 1).
    Checks: row 0 finite with w > 0 and h > 0; no NaN in an annotated frame that should be visible.
    """
    boxes = np.asarray(boxes)
    count = len(boxes)
    lines = np.arange(1, count + 1) if line_numbers is None else np.asarray(line_numbers)
    first = boxes[0]
    if not np.all(np.isfinite(first)):
        raise ValueError(f'{path}, line {lines[0]}: first box is not finite: {first.tolist()}')
    if first[2] <= 0 or first[3] <= 0:
        raise ValueError(f'{path}, line {lines[0]}: first box has zero or negative size '
                         f'(w={first[2]:g}, h={first[3]:g})')
    should_see = np.ones(count, bool) if visible is None else np.asarray(visible, bool)
    if annotated is not None:
        should_see = should_see & np.asarray(annotated, bool)
    bad = np.flatnonzero(should_see & np.isnan(boxes).any(axis=1))
    if bad.size:
        raise ValueError(f'{path}, line {lines[bad[0]]}: NaN box in frame {bad[0]} where the '
                         f'target should be visible ({bad.size} such frame(s))')


def usable_boxes(boxes: np.ndarray) -> np.ndarray:
    """[T] bool: finite boxes with positive width and height (training sets mark others absent)."""
    boxes = np.asarray(boxes)
    finite = np.isfinite(boxes).all(axis=1)
    with np.errstate(invalid='ignore'):
        return finite & (np.nan_to_num(boxes[:, 2]) > 0) & (np.nan_to_num(boxes[:, 3]) > 0)


def image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def natural_key(name: str) -> tuple:
    """Sort key that orders the digit runs of `name` by value: 'img2.jpg' < 'img10.jpg'
    (plain string order would put img10 first). Ties (e.g. '01' vs '1') fall back to the text."""
    parts = re.split(r'(\d+)', name)
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts), name


def numbered_frames(folder: Path, first: int, last: int, digits: int,
                     suffix: str = '.jpg') -> list[str]:
    """Paths folder/<n zero-padded to `digits`><suffix> for n = first..last (not checked)."""
    return [os.path.join(folder, f'{n:0{digits}d}{suffix}') for n in range(first, last + 1)]
