"""LaSOT reader (Protocol II test split or every sequence under the root)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from tracking.data.benchmarks.annotations import (check_boxes, data_lines, numbered_frames, read_flags, read_number_rows,
                                                  require_dir, usable_boxes)
from tracking.data.sequence import Sequence

Loader = Callable[[], Sequence]

# LaSOT Protocol II test split: 280 sequences, 4 per category, in the order of the official
# toolkit's sequence_evaluation_config/testing_set.txt.
_LASOT_TEST_BY_CATEGORY = {
    'airplane': (1, 9, 13, 15), 'basketball': (1, 6, 7, 11), 'bear': (2, 4, 6, 17),
    'bicycle': (2, 7, 9, 18), 'bird': (2, 3, 15, 17), 'boat': (3, 4, 12, 17),
    'book': (3, 10, 11, 19), 'bottle': (1, 12, 14, 18), 'bus': (2, 5, 17, 19),
    'car': (2, 6, 9, 17), 'cat': (1, 3, 18, 20), 'cattle': (2, 7, 12, 13),
    'spider': (14, 16, 18, 20), 'coin': (3, 6, 7, 18), 'crab': (3, 6, 12, 18),
    'surfboard': (12, 4, 5, 8), 'cup': (1, 4, 7, 17), 'deer': (4, 8, 10, 14),
    'dog': (1, 7, 15, 19), 'guitar': (3, 8, 10, 16), 'person': (1, 5, 10, 12),
    'pig': (2, 10, 13, 18), 'rubicCube': (1, 6, 14, 19), 'swing': (10, 14, 17, 20),
    'drone': (13, 15, 2, 7), 'pool': (12, 15, 3, 7), 'rabbit': (10, 13, 17, 19),
    'racing': (10, 15, 16, 20), 'robot': (1, 19, 5, 8), 'sepia': (13, 16, 6, 8),
    'sheep': (3, 5, 7, 9), 'skateboard': (16, 19, 3, 8), 'tank': (14, 16, 6, 9),
    'tiger': (12, 18, 4, 6), 'train': (1, 11, 20, 7), 'truck': (16, 3, 6, 7),
    'turtle': (16, 5, 8, 9), 'umbrella': (17, 19, 2, 9), 'yoyo': (15, 17, 19, 7),
    'zebra': (10, 14, 16, 17), 'elephant': (1, 12, 16, 18), 'goldfish': (3, 7, 8, 10),
    'hat': (1, 2, 5, 18), 'kite': (4, 6, 10, 15), 'motorcycle': (1, 3, 9, 18),
    'mouse': (1, 8, 9, 17), 'flag': (3, 9, 5, 2), 'frog': (3, 4, 20, 9),
    'gametarget': (1, 2, 7, 13), 'hand': (2, 3, 9, 16), 'helmet': (5, 11, 19, 13),
    'licenseplate': (6, 12, 13, 15), 'electricfan': (1, 10, 18, 20), 'chameleon': (3, 6, 11, 20),
    'crocodile': (3, 4, 10, 14), 'gecko': (1, 5, 16, 19), 'fox': (2, 3, 5, 20),
    'giraffe': (2, 10, 13, 15), 'gorilla': (4, 6, 9, 13), 'hippo': (1, 7, 9, 20),
    'horse': (1, 4, 12, 15), 'kangaroo': (2, 5, 11, 14), 'leopard': (1, 7, 16, 20),
    'lion': (1, 5, 12, 20), 'lizard': (1, 3, 6, 13), 'microphone': (2, 6, 14, 16),
    'monkey': (3, 4, 9, 17), 'shark': (2, 3, 5, 6), 'squirrel': (8, 11, 13, 19),
    'volleyball': (1, 13, 18, 19),
}
LASOT_TEST_SEQUENCES = tuple(f'{category}-{n}' for category, numbers
                             in _LASOT_TEST_BY_CATEGORY.items() for n in numbers)


def read_lasot_sequence(seq_dir: str | os.PathLike, strict: bool = True) -> Sequence:
    """One LaSOT sequence.

    Layout: <seq_dir>/img/00000001.jpg..., groundtruth.txt (x,y,w,h per line),
    full_occlusion.txt and out_of_view.txt (one comma-separated line of 0/1 per frame).
    visible = not (full_occlusion or out_of_view). strict: validate GT (benchmark); otherwise
    frames with NaN or non-positive boxes are marked not visible (training).
    Frame count = GT line count; frame paths are built, not listed.
    """
    seq_dir = require_dir(seq_dir, 'LaSOT sequence folder')
    gt_path = seq_dir / 'groundtruth.txt'
    boxes = read_number_rows(gt_path, (4,))  # float64, as written (scoring needs it)
    count = len(boxes)
    occluded = read_flags(seq_dir / 'full_occlusion.txt', count, 'LaSOT full_occlusion.txt')
    out_of_view = read_flags(seq_dir / 'out_of_view.txt', count, 'LaSOT out_of_view.txt')
    visible = (occluded == 0) & (out_of_view == 0)
    if strict:
        check_boxes(boxes, gt_path, visible)
    else:
        visible &= usable_boxes(boxes)
    frames = numbered_frames(seq_dir / 'img', 1, count, 8)
    extra = {'full_occlusion': occluded.astype(bool), 'out_of_view': out_of_view.astype(bool)}
    return Sequence(seq_dir.name, frames, boxes, visible, extra)


def lasot_sequence_dir(root: Path, name: str) -> Path:
    """<root>/<category>/<name> (official layout) or <root>/<name> (flat test download)."""
    nested = root / name.rsplit('-', 1)[0] / name
    return nested if nested.is_dir() or not (root / name).is_dir() else root / name


def lasot_names_on_disk(root: Path) -> list[str]:
    """Sequence names found under root (both nested and flat layouts), sorted."""
    names = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if (child / 'groundtruth.txt').is_file():
            names.append(child.name)
        else:
            names.extend(sorted(p.name for p in child.iterdir()
                                if (p / 'groundtruth.txt').is_file()))
    return names


def lasot_test_names(root: Path) -> list[str]:
    """The test list: <root>/testing_set.txt if present, else LASOT_TEST_SEQUENCES."""
    list_file = root / 'testing_set.txt'
    if list_file.is_file():
        return [line for _, line in data_lines(list_file)]
    return list(LASOT_TEST_SEQUENCES)


def _lasot_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """LaSOT: <root>/<category>/<category>-<n>/{img/%08d.jpg, groundtruth.txt, full_occlusion.txt,
    out_of_view.txt}. split 'test' (default): testing_set.txt under root or the built-in 280-list
    (missing folders raise FileNotFoundError when loaded); 'all': every sequence under root."""
    split = split or 'test'
    if split == 'test':
        names = lasot_test_names(root)
    elif split == 'all':
        names = lasot_names_on_disk(root)
    else:
        raise ValueError(f"lasot: unknown split {split!r}; use 'test' or 'all'")
    return [(n, lambda n=n: read_lasot_sequence(lasot_sequence_dir(root, n))) for n in names]
