"""VOT short-term reader (polygon or rectangle ground truth, frames in color/ or the folder)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from tracking.boxes import polygon_to_xywh
from tracking.data.benchmarks.annotations import (IMAGE_SUFFIXES, check_boxes, data_lines,
                                                  image_files, require_dir, require_file,
                                                  SPLIT_RE)
from tracking.data.sequence import Sequence

Loader = Callable[[], Sequence]

def rects_to_polygons(rects: np.ndarray) -> np.ndarray:
    """[T, 4] xywh -> [T, 8] corners (x0,y0, x1,y0, x1,y1, x0,y1)."""
    x0, y0 = rects[:, 0], rects[:, 1]
    x1, y1 = x0 + rects[:, 2], y0 + rects[:, 3]
    return np.stack([x0, y0, x1, y0, x1, y1, x0, y1], axis=1)


def read_vot_regions(path: str | os.PathLike) -> np.ndarray:
    """VOT groundtruth.txt: per line 8 polygon values or 4 rectangle values (may be mixed).

    Returns: [T, 8] float64 polygons (rectangles as their 4 corners). ValueError naming file and
    line for any other line (e.g. VOT2020 mask encodings).
    """
    path = require_file(path, 'VOT ground-truth file')
    polygons = []
    for line_no, text in data_lines(path):
        try:
            values = np.asarray([float(t) for t in SPLIT_RE.split(text) if t], np.float64)
        except ValueError:
            raise ValueError(f'{path}, line {line_no}: not a list of numbers: {text!r}') from None
        if len(values) == 4:
            values = rects_to_polygons(values[None])[0]
        elif len(values) != 8:
            raise ValueError(f'{path}, line {line_no}: expected 4 or 8 values, got '
                             f'{len(values)}: {text!r}')
        polygons.append(values)
    if not polygons:
        raise ValueError(f'{path}: empty annotation file')
    return np.stack(polygons)


def read_vot_sequence(seq_dir: str | os.PathLike) -> Sequence:
    """One VOT short-term sequence.

    Layout: <seq_dir>/groundtruth.txt (per line 8 comma-separated polygon corners or a 4-value
    x,y,w,h rectangle, see read_vot_regions) and frames found by `vot_frame_files`
    (<seq_dir>/color/00000001.jpg..., imgs/, img/, the folder itself, or where a VOT2020+
    `sequence` file's channels.color points).
    The image count must equal the GT line count. boxes = axis-aligned min/max box of the
    corners; extra 'polygons' [T, 8] float64 (rectangles are turned into their 4 corners).
    """
    seq_dir = require_dir(seq_dir, 'VOT sequence folder')
    gt_path = seq_dir / 'groundtruth.txt'
    polygons = read_vot_regions(gt_path)
    boxes = polygon_to_xywh(polygons).astype(np.float64)
    frame_dir, files = vot_frame_files(seq_dir)
    files = [str(p) for p in files]
    if len(files) != len(boxes):
        relation = 'fewer' if len(boxes) < len(files) else 'more'
        raise ValueError(f'{gt_path}: {len(boxes)} ground-truth lines but {len(files)} frames in '
                         f'{frame_dir} ({relation} lines than frames)')
    check_boxes(boxes, gt_path)
    return Sequence(seq_dir.name, files, boxes, None, {'polygons': polygons})


FRAME_FOLDERS = ('color', 'imgs', 'img', '.')  # Where VOT releases put the frames, in order.


def _sequence_file_folder(seq_dir: Path) -> Path | None:
    """The folder of `channels.color=color/%08d.jpg` in a VOT2020+ `sequence` file, else None."""
    path = seq_dir / 'sequence'
    if not path.is_file():
        return None
    for _, line in data_lines(path):
        key, sep, value = line.partition('=')
        if sep and key.strip() == 'channels.color':
            return seq_dir / os.path.dirname(value.strip())
    return None


def vot_frame_files(seq_dir: Path) -> tuple[Path, list[Path]]:
    """(frame folder, sorted image files) of a VOT sequence folder.

    Looks in the `sequence` file's channels.color folder (VOT2020+) if there is one, then in
    color/, imgs/, img/ and the folder itself, and takes the first that holds images. Raises
    ValueError naming every folder it looked in when none does.
    """
    candidates = [seq_dir / name for name in FRAME_FOLDERS]
    from_file = _sequence_file_folder(seq_dir)
    if from_file is not None:
        candidates.insert(0, from_file)
    for folder in candidates:
        if folder.is_dir():
            files = image_files(folder)
            if files:
                return folder, files
    looked = ', '.join(str(c) for c in dict.fromkeys(candidates))
    raise ValueError(f'{seq_dir}: 0 frames; no {"/".join(s.lstrip(".") for s in IMAGE_SUFFIXES)} '
                     f'images in any of: {looked}')


def _vot_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """VOT: <root>/list.txt + <root>/<seq>/...; root may be one sequence folder."""
    if (root / 'groundtruth.txt').is_file():
        return [(root.name, lambda: read_vot_sequence(root))]
    list_file = root / 'list.txt'
    if list_file.is_file():
        names = [line for _, line in data_lines(list_file)]
    else:
        names = sorted(p.name for p in root.iterdir() if (p / 'groundtruth.txt').is_file())
    return [(n, lambda n=n: read_vot_sequence(root / n)) for n in names]
