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
    is a ValueError naming the file, its line count and the frame count, and a gap in the
    frame numbering (or GT lines past the last image) a ValueError naming the missing frames
    ('img/0042.jpg missing').
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
        absent = [f for f in frames if not os.path.isfile(f)]
        if absent:
            raise ValueError(f'{seq_dir}: {_missing_text(img_dir, [Path(f) for f in absent])} '
                             f'(official range of {seq_dir.name}: frames {first}..{last})')
    else:
        missing = _missing_numbers(files, len(boxes))
        if missing:
            relation = 'but' if len(boxes) != len(files) else 'and'
            raise ValueError(f'{gt_path}: {len(boxes)} ground-truth lines {relation} '
                             f'{len(files)} frames in {img_dir}: '
                             f'{_missing_text(img_dir, missing)}')
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


def _missing_numbers(files: list[Path], num_lines: int) -> list[Path]:
    """Frame files absent from a numbered img/ folder: gaps in 1..max(last number, num_lines).

    files: the sorted image files; names must be all digits (e.g. 0001.jpg), else [] (no
    numbering to check). Returns the missing paths (same digit count and suffix).
    """
    if not files or not all(p.stem.isdigit() for p in files):
        return []
    present = {int(p.stem) for p in files}
    digits, suffix, folder = len(files[0].stem), files[0].suffix, files[0].parent
    last = max(max(present), num_lines)
    return [folder / f'{n:0{digits}d}{suffix}' for n in range(1, last + 1) if n not in present]


def _missing_text(img_dir: Path, missing: list[Path], shown: int = 5) -> str:
    """'img/0042.jpg missing' / 'img/0042.jpg, img/0043.jpg ... missing (12 frames)'."""
    names = [f'{img_dir.name}/{p.name}' for p in missing[:shown]]
    more = f' ... ({len(missing)} frames)' if len(missing) > shown else ''
    return f'{", ".join(names)}{more} missing'


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
