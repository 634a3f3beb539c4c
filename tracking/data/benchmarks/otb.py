"""OTB-100 reader (OTB-2015 layout, with the official frame ranges of the special cases)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from tracking.data.benchmarks.annotations import (check_boxes, image_files,
                                                  numbered_frames, read_number_rows,
                                                  require_dir)
from tracking.data.sequence import Sequence

Loader = Callable[[], Sequence]

# OTB-100 sequences whose ground truth does not map one-to-one onto the sorted img/ files:
# (first frame number, last frame number), inclusive, as in the OTB-100 benchmark configuration
# (configSeqs100.m; same values in pytracking's OTB list). David's GT starts at img/0300.jpg;
# Diving/Football1/Freeman3/Freeman4 have more images than GT lines; BlurCar1/3/4 do not start at
# 0001.jpg; Board uses 5-digit file names (00001.jpg). Not listed (not needed for loading):
# Tiger1 has `initOmit` 5 in the official configuration (the first 5 frames are left out of the
# evaluation); its frames and GT match 1:1, and the reader puts init_omit=5 in `extra`.
OTB_FRAME_RANGES = {
    'Board': (1, 698),
    'BlurCar1': (247, 988),
    'BlurCar3': (3, 359),
    'BlurCar4': (18, 397),
    'David': (300, 770),
    'Diving': (1, 215),
    'Football1': (1, 74),
    'Freeman3': (1, 460),
    'Freeman4': (1, 283),
}
OTB_INIT_OMIT = {'Tiger1': 5}


def _otb_gt_files(seq_dir: Path) -> list[tuple[str, Path]]:
    """(sequence name, GT file) of one OTB folder; numbered files give '<folder>-<k>' names."""
    numbered = sorted(seq_dir.glob('groundtruth_rect.*.txt'))
    numbered = [p for p in numbered if p.name.split('.')[1].isdigit() and p.stat().st_size > 0]
    if numbered:
        return [(f'{seq_dir.name}-{p.name.split(".")[1]}', p) for p in numbered]
    return [(seq_dir.name, seq_dir / 'groundtruth_rect.txt')]


def read_otb_sequence(seq_dir: str | os.PathLike, gt_path: str | os.PathLike | None = None,
                      name: str | None = None) -> Sequence:
    """One OTB sequence.

    Layout: <seq_dir>/img/0001.jpg... (4 digits; Board 5 digits) and
    <seq_dir>/groundtruth_rect.txt (or groundtruth_rect.<k>.txt for two-target sequences),
    one `x y w h` per line separated by ',', tabs or spaces.
    Frames: the img/ files in order when the folder is not in OTB_FRAME_RANGES; there the GT
    covers frame numbers first..last. Otherwise a GT line count different from the image count
    is a ValueError naming the file, its line count and the frame count.
    """
    seq_dir = require_dir(seq_dir, 'OTB sequence folder')
    img_dir = require_dir(seq_dir / 'img', 'OTB image folder')
    gt_path = Path(gt_path) if gt_path is not None else seq_dir / 'groundtruth_rect.txt'
    name = name or seq_dir.name
    boxes = read_number_rows(gt_path, (4,))  # float64, as written (scoring needs it)
    files = image_files(img_dir)
    if seq_dir.name in OTB_FRAME_RANGES:
        first, last = OTB_FRAME_RANGES[seq_dir.name]
        if len(boxes) != last - first + 1:
            raise ValueError(f'{gt_path}: {len(boxes)} ground-truth lines but the official range '
                             f'of {seq_dir.name} is frames {first}..{last} '
                             f'({last - first + 1} frames)')
        digits = len(files[0].stem) if files else 4
        suffix = files[0].suffix if files else '.jpg'
        frames = numbered_frames(img_dir, first, last, digits, suffix)
    else:
        if len(boxes) != len(files):
            relation = 'fewer' if len(boxes) < len(files) else 'more'
            raise ValueError(f'{gt_path}: {len(boxes)} ground-truth lines but {len(files)} frames '
                             f'in {img_dir} ({relation} lines than frames; not a known OTB '
                             'special case)')
        frames = [str(p) for p in files]
    check_boxes(boxes, gt_path)
    extra = {}
    if seq_dir.name in OTB_INIT_OMIT:
        extra['init_omit'] = OTB_INIT_OMIT[seq_dir.name]
    return Sequence(name, frames, boxes, None, extra)


def _otb_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """OTB-100 layout: <root>/<Seq>/img/%04d.jpg + groundtruth_rect[.k].txt; or root = one <Seq>."""
    if (root / 'img').is_dir():
        folders = [root]
    else:
        folders = sorted(p for p in root.iterdir() if (p / 'img').is_dir())
    entries = []
    for folder in folders:
        for name, gt in _otb_gt_files(folder):
            entries.append((name, lambda f=folder, g=gt, n=name: read_otb_sequence(f, g, n)))
    return entries
