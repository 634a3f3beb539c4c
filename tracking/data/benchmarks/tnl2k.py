"""TNL2K reader (the 700-sequence test set of "Towards More Flexible and Accurate Object Tracking
with Natural Language", CVPR 2021).

Layout: <root>/<sequence>/{imgs/<frames>, groundtruth.txt, language.txt}. Sequence folders may
also sit one level down (<root>/<part>/<sequence>/, as some re-packed downloads unzip). What the
real release does that a reader has to survive:

* frame files are .jpg in some sequences and .png in others, and are not numbered uniformly
  (zero padding differs, some names carry a prefix): frames are the image files of imgs/ in
  natural order (digit runs compared as numbers: '2.png' before '10.png');
* folder names keep odd characters (dashes, mixed case, suffixes such as '-Done' / '_done'):
  names are taken verbatim from the disk, never rebuilt from a pattern.

groundtruth.txt: one 'x,y,w,h' per frame (1-based pixels, as written). The data folders carry
no absence labels (the TNL2K MATLAB toolkit keeps its own, annos/absent/<seq>.txt): `visible` is
False where the box is not finite or has no positive width and height (the absent-target rows). language.txt, when present, goes to extra['language'].
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from tracking.data.benchmarks.annotations import (IMAGE_SUFFIXES, check_boxes, natural_key,
                                                  read_number_rows, require_dir, usable_boxes)
from tracking.data.sequence import Sequence

Loader = Callable[[], Sequence]


def tnl2k_frame_files(img_dir: str | os.PathLike) -> list[str]:
    """Image files (IMAGE_SUFFIXES, any case) of `img_dir` in natural order, as path strings.
    FileNotFoundError naming the folder if it is missing; ValueError if it holds no image."""
    img_dir = require_dir(img_dir, 'TNL2K frame folder')
    files = sorted((p for p in img_dir.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise ValueError(f'{img_dir}: no image files ({", ".join(IMAGE_SUFFIXES)})')
    return [str(p) for p in files]


def read_tnl2k_sequence(seq_dir: str | os.PathLike) -> Sequence:
    """One TNL2K sequence folder -> Sequence (name = the folder name, verbatim).

    Raises FileNotFoundError naming a missing folder, imgs/ or groundtruth.txt; ValueError naming
    groundtruth.txt (and its line) for malformed or unusable ground truth (first box not finite
    or not positive) and naming the folder when the frame and box counts differ.
    """
    seq_dir = require_dir(seq_dir, 'TNL2K sequence folder')
    gt_path = seq_dir / 'groundtruth.txt'
    boxes = read_number_rows(gt_path, (4,))
    frames = tnl2k_frame_files(seq_dir / 'imgs')
    if len(frames) != len(boxes):
        raise ValueError(f'{seq_dir}: {len(frames)} frames in imgs/ but {len(boxes)} boxes in '
                         f'groundtruth.txt')
    visible = usable_boxes(boxes)
    check_boxes(boxes, gt_path, visible)
    extra = {}
    language = seq_dir / 'language.txt'
    if language.is_file():
        extra['language'] = language.read_text(encoding='utf-8', errors='replace').strip()
    return Sequence(seq_dir.name, frames, boxes, visible, extra)


def tnl2k_sequence_dirs(root: Path) -> dict[str, Path]:
    """{sequence name: folder} for every folder holding groundtruth.txt directly under root or
    one level down, in natural name order. ValueError if two folders share a name."""
    found: dict[str, Path] = {}
    for child in sorted((p for p in Path(root).iterdir() if p.is_dir()),
                        key=lambda p: natural_key(p.name)):
        candidates = [child] if (child / 'groundtruth.txt').is_file() else sorted(
            (p for p in child.iterdir() if p.is_dir() and (p / 'groundtruth.txt').is_file()),
            key=lambda p: natural_key(p.name))
        for folder in candidates:
            if folder.name in found:
                raise ValueError(f'tnl2k: two sequence folders named {folder.name!r}: '
                                 f'{found[folder.name]} and {folder}')
            found[folder.name] = folder
    return dict(sorted(found.items(), key=lambda item: natural_key(item[0])))


def _tnl2k_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """Every sequence folder under root (the test set's root). split: None, 'test' or 'all'
    (the same: the root holds the split); anything else raises ValueError. A root without any
    sequence folder raises FileNotFoundError naming it."""
    if split not in (None, 'test', 'all'):
        raise ValueError(f"tnl2k: unknown split {split!r}; use 'test' (the folder given as root)")
    dirs = tnl2k_sequence_dirs(root)
    if not dirs:
        raise FileNotFoundError(f'tnl2k: no sequence folders (<name>/groundtruth.txt) under '
                                f'{root}')
    return [(name, lambda d=d: read_tnl2k_sequence(d)) for name, d in dirs.items()]
