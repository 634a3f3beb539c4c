"""Need for Speed (NfS, 30 fps) reader: 240-fps annotations subsampled to the 30-fps frames."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from tracking.data.benchmarks.annotations import (check_boxes, data_lines, image_files,
                                                  require_dir, require_file)
from tracking.data.sequence import Sequence

Loader = Callable[[], Sequence]

NFS_ANNOTATION_STRIDE = 8  # 240-fps annotations -> 30-fps frames



def read_nfs_annotation(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NfS annotation: 'id xmin ymin xmax ymax frame lost occluded generated "label"' per line.

    Returns: boxes [N, 4] float64 (x, y, w = xmax - xmin, h = ymax - ymin), lost [N] bool,
      occluded [N] bool. ValueError naming file and line on a malformed line.
    """
    path = require_file(path, 'NfS annotation file')
    boxes, lost, occluded = [], [], []
    for line_no, text in data_lines(path):
        tokens = text.split()
        try:
            x0, y0, x1, y1 = (float(t) for t in tokens[1:5])
            lost.append(int(tokens[6]) != 0 if len(tokens) > 6 else False)
            occluded.append(int(tokens[7]) != 0 if len(tokens) > 7 else False)
        except (ValueError, IndexError):
            raise ValueError(f'{path}, line {line_no}: expected "id xmin ymin xmax ymax frame '
                             f'lost occluded ...", got {text!r}') from None
        boxes.append((x0, y0, x1 - x0, y1 - y0))
    if not boxes:
        raise ValueError(f'{path}: empty annotation file')
    return np.asarray(boxes), np.asarray(lost, bool), np.asarray(occluded, bool)


def read_nfs_sequence(seq_dir: str | os.PathLike, fps: int = 30) -> Sequence:
    """One NfS sequence at 30 fps.

    Layout: <seq_dir>/30/<seq>/00001.jpg... and the annotation <seq_dir>/30/<seq>.txt (else
    <seq_dir>/240/<seq>.txt). The annotations are at 240 fps. Rule: with A annotation lines and
    F 30-fps frames, A == F is used as is; otherwise lines 1, 9, 17, ... (every 8th, the 30-fps
    frame k showing 240-fps frame 8k+1) are kept, and if they then differ from F by exactly one,
    both are cut to the shorter (the got10k toolkit's rule); any other mismatch is a ValueError.
    visible = not lost (not used by scoring: PySOT / got10k score every NfS frame); extra
    'occluded' [T] bool.
    """
    seq_dir = require_dir(seq_dir, 'NfS sequence folder')
    name = seq_dir.name
    frame_dir = require_dir(seq_dir / str(fps) / name, 'NfS frame folder')
    anno_path = seq_dir / str(fps) / f'{name}.txt'
    if not anno_path.is_file() and (seq_dir / '240' / f'{name}.txt').is_file():
        anno_path = seq_dir / '240' / f'{name}.txt'
    boxes, lost, occluded = read_nfs_annotation(anno_path)
    files = [str(p) for p in image_files(frame_dir)]
    lines = np.arange(1, len(boxes) + 1)
    if len(boxes) != len(files):
        keep = slice(0, None, NFS_ANNOTATION_STRIDE)
        boxes, lost, occluded, lines = boxes[keep], lost[keep], occluded[keep], lines[keep]
        if abs(len(boxes) - len(files)) > 1:
            raise ValueError(f'{anno_path}: {len(lines)} annotations after taking every '
                             f'{NFS_ANNOTATION_STRIDE}th line but {len(files)} frames in '
                             f'{frame_dir}')
        count = min(len(boxes), len(files))
        boxes, lost, occluded, lines, files = (boxes[:count], lost[:count], occluded[:count],
                                               lines[:count], files[:count])
    visible = ~lost
    check_boxes(boxes, anno_path, visible, line_numbers=lines)
    return Sequence(name, files, boxes, visible, {'occluded': occluded})


def _nfs_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """NfS: <root>/<seq>/30/<seq>/%05d.jpg + <root>/<seq>/30/<seq>.txt; root may be one <seq>."""
    if (root / '30' / root.name).is_dir():
        folders = [root]
    else:
        folders = sorted(p for p in root.iterdir() if (p / '30' / p.name).is_dir())
    return [(f.name, lambda f=f: read_nfs_sequence(f)) for f in folders]
