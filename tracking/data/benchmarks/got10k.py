"""GOT-10k reader (val/test/train splits with absence/cover labels and meta_info.ini)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from tracking.data.benchmarks.annotations import (check_boxes, data_lines, image_files,
                                                  numbered_frames, read_flags, read_number_rows,
                                                  require_dir, usable_boxes)
from tracking.data.sequence import Sequence

Loader = Callable[[], Sequence]

def read_meta_info(path: str | os.PathLike) -> dict[str, str]:
    """GOT-10k meta_info.ini: '[METAINFO]' header then 'key: value' lines -> dict of strings."""
    meta = {}
    for _, text in data_lines(Path(path)):
        if text.startswith('[') or ':' not in text:
            continue
        key, value = text.split(':', 1)
        meta[key.strip()] = value.strip()
    return meta


def _resolution(meta: dict[str, str], path: Path) -> tuple[int, int] | None:
    """'resolution: (W, H)' -> (W, H) ints; None if absent."""
    if 'resolution' not in meta:
        return None
    numbers = re.findall(r'\d+', meta['resolution'])
    if len(numbers) != 2:
        raise ValueError(f'{path}: cannot parse resolution {meta["resolution"]!r}')
    return int(numbers[0]), int(numbers[1])


def read_got10k_sequence(seq_dir: str | os.PathLike, labels: bool = True,
                         strict: bool = True) -> Sequence:
    """One GOT-10k sequence.

    Layout: <seq_dir>/00000001.jpg..., groundtruth.txt (x,y,w,h comma), absence.label and
    cover.label (one integer per line; cover 0..8, 0 = fully invisible), meta_info.ini
    ('resolution: (W, H)'), cut_by_image.label (optional).
    labels=True (train/val): all frames annotated, visible = (absence == 0) & (cover > 0),
    extra 'cover' [T] int, 'absence' [T] bool, 'cut_by_image' [T] bool if present.
    labels=False (test): groundtruth.txt holds only the first box; the frame count comes from
    the image files; boxes after frame 0 are NaN and visible is None.
    extra 'image_size' (W, H) from meta_info.ini when present, 'meta' the whole dict.
    strict=False (training) marks NaN/non-positive boxes not visible instead of raising.
    """
    seq_dir = require_dir(seq_dir, 'GOT-10k sequence folder')
    gt_path = seq_dir / 'groundtruth.txt'
    boxes = read_number_rows(gt_path, (4,))  # float64, as written (scoring needs it)
    extra = {}
    meta_path = seq_dir / 'meta_info.ini'
    if meta_path.is_file():
        extra['meta'] = read_meta_info(meta_path)
        size = _resolution(extra['meta'], meta_path)
        if size is not None:
            extra['image_size'] = size
    if labels:
        count = len(boxes)
        absence = read_flags(seq_dir / 'absence.label', count, 'GOT-10k absence.label')
        cover = read_flags(seq_dir / 'cover.label', count, 'GOT-10k cover.label')
        visible = (absence == 0) & (cover > 0)
        extra.update(cover=cover, absence=absence.astype(bool))
        cut_path = seq_dir / 'cut_by_image.label'
        if cut_path.is_file():
            extra['cut_by_image'] = read_flags(cut_path, count).astype(bool)
        if strict:
            check_boxes(boxes, gt_path, visible)
        else:
            visible &= usable_boxes(boxes)
        frames = numbered_frames(seq_dir, 1, count, 8)
    else:
        count = len(image_files(seq_dir))
        if count < len(boxes):
            raise ValueError(f'{gt_path}: {len(boxes)} ground-truth lines but only {count} '
                             f'frames in {seq_dir}')
        full = np.full((count, 4), np.nan, np.float64)
        full[:len(boxes)] = boxes
        boxes, visible = full, None
        check_boxes(boxes, gt_path, annotated=np.arange(count) < 1)
        frames = numbered_frames(seq_dir, 1, count, 8)
    return Sequence(seq_dir.name, frames, boxes, visible, extra)


def got10k_sequence_names(split_dir: Path) -> list[str]:
    """Names from <split_dir>/list.txt, else the sub-folders (not hidden ones such as the
    dataset index's .tracking_index), sorted."""
    list_file = split_dir / 'list.txt'
    if list_file.is_file():
        return [line for _, line in data_lines(list_file)]
    return sorted(p.name for p in split_dir.iterdir()
                  if p.is_dir() and not p.name.startswith('.'))


def got10k_split_dir(root: Path, split: str) -> Path:
    """<root>/<split>, or root itself when it is already the split folder."""
    if (root / split).is_dir():
        return root / split
    if root.name == split:
        return root
    raise FileNotFoundError(f'GOT-10k split folder not found: {root / split}')


def _got10k_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """GOT-10k: <root>/<split>/list.txt and <root>/<split>/<seq>/{%08d.jpg, groundtruth.txt,
    absence.label, cover.label, meta_info.ini}; split 'val' (default) or 'test'."""
    split = split or 'val'
    if split not in ('val', 'test', 'train'):
        raise ValueError(f"got10k: unknown split {split!r}; use 'val', 'test' or 'train'")
    split_dir = got10k_split_dir(root, split)
    labels = split != 'test'
    return [(n, lambda n=n: read_got10k_sequence(split_dir / n, labels))
            for n in got10k_sequence_names(split_dir)]
