"""TrackingNet reader (TEST chunk with the first box only, or a TRAIN_k chunk)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from tracking.data.benchmarks.annotations import (check_boxes, image_files,
                                                  read_number_rows,
                                                  require_dir, usable_boxes)
from tracking.data.sequence import Sequence

Loader = Callable[[], Sequence]

def read_trackingnet_sequence(chunk_dir: str | os.PathLike, name: str,
                              first_box_only: bool, strict: bool = True) -> Sequence:
    """One TrackingNet sequence of a chunk (TEST or TRAIN_k).

    Layout: <chunk_dir>/frames/<name>/0.jpg, 1.jpg, ... (0-based, no padding) and
    <chunk_dir>/anno/<name>.txt (x,y,w,h comma per line).
    first_box_only (TEST): the anno file holds only frame 0; the frame count comes from the
    image files and later boxes are NaN (visible None). Otherwise (TRAIN) frame count = anno
    lines and frame paths are built without listing; visible marks usable boxes.
    """
    chunk_dir = Path(chunk_dir)
    frame_dir = chunk_dir / 'frames' / name
    anno_path = chunk_dir / 'anno' / f'{name}.txt'
    boxes = read_number_rows(anno_path, (4,), 'TrackingNet annotation file')  # float64
    if first_box_only:
        require_dir(frame_dir, 'TrackingNet frame folder')
        count = len(image_files(frame_dir))
        if count < len(boxes):
            raise ValueError(f'{anno_path}: {len(boxes)} lines but only {count} frames in '
                             f'{frame_dir}')
        full = np.full((count, 4), np.nan, np.float64)
        full[:1] = boxes[:1]
        boxes, visible = full, None
        check_boxes(boxes, anno_path, annotated=np.arange(count) < 1)
    else:
        count = len(boxes)
        if strict:
            check_boxes(boxes, anno_path)
            visible = None
        else:
            visible = usable_boxes(boxes)
    frames = [os.path.join(frame_dir, f'{i}.jpg') for i in range(count)]
    return Sequence(name, frames, boxes, visible, {'chunk': chunk_dir.name})


def trackingnet_names(chunk_dir: Path) -> list[str]:
    """Sequence names of a chunk from its anno/*.txt files, sorted."""
    anno_dir = require_dir(chunk_dir / 'anno', 'TrackingNet annotation folder')
    return sorted(p.stem for p in anno_dir.glob('*.txt'))


def _trackingnet_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """TrackingNet test: <root>/TEST/frames/<seq>/<i>.jpg (0-based), <root>/TEST/anno/<seq>.txt
    holding only the first box. split 'test' (default) or a chunk name such as 'TRAIN_0'."""
    split = split or 'test'
    chunk = 'TEST' if split.lower() == 'test' else split
    chunk_dir = require_dir(root / chunk, 'TrackingNet chunk folder')
    first_only = chunk == 'TEST'
    return [(n, lambda n=n: read_trackingnet_sequence(chunk_dir, n, first_only))
            for n in trackingnet_names(chunk_dir)]
