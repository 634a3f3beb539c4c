"""Evaluation benchmarks on disk -> `list[Sequence]`.

`load_benchmark(name, root, sequences=None, split=None)` dispatches to one reader per benchmark
(otb, lasot, got10k, trackingnet, uav123, nfs, vot, synthetic). Frames are kept as paths and read
lazily by `Sequence.frame(i)` (tracking.images.load_image); nothing is copied or decoded here.

Boxes are kept exactly as the annotation files write them: `boxes` [T, 4] float32 (x, y, w, h)
in pixels (OTB/UAV/LaSOT 1-based pixels are not shifted). Rows without an annotation (withheld
test ground truth) are NaN. `visible` [T] bool comes from the benchmark's absence labels; it is
None where the benchmark has none (OTB, VOT, test splits).

Ground-truth checks (ValueError naming the file and the 1-based line number):
  * a line that does not hold the expected number of values, or a value that is not a number;
  * the first box is NaN or has zero/negative width or height;
  * NaN in a frame where the target should be visible (NaN is legitimate only where the
    benchmark marks the frame absent, e.g. UAV123 NaN lines -> visible False).
A missing root, sequence folder or annotation file raises FileNotFoundError naming the path.

The per-sequence readers (`read_lasot_sequence`, `read_got10k_sequence`,
`read_trackingnet_sequence`) and the annotation helpers are shared with `tracking.data.datasets`.
"""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence as Seq

import numpy as np

from tracking.boxes import polygon_to_xywh
from tracking.data.sequence import Sequence

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')

# --------------------------------------------------------------------------------------------
# Tables of official facts.

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

# UAV123 sequences split into several annotated parts: part name -> (image folder, first frame,
# last frame), 1-based inclusive frame numbers of data_seq/UAV123/<folder>/%06d.jpg. Values from
# the official UAV123 configuration (configSeqs.m, as reproduced in pytracking's UAV list).
UAV123_SPLIT_RANGES = {
    'bird1_1': ('bird1', 1, 253), 'bird1_2': ('bird1', 775, 1477),
    'bird1_3': ('bird1', 1573, 2437),
    'car1_1': ('car1', 1, 751), 'car1_2': ('car1', 751, 1627), 'car1_3': ('car1', 1627, 2629),
    'car6_1': ('car6', 1, 487), 'car6_2': ('car6', 487, 1807), 'car6_3': ('car6', 1807, 2953),
    'car6_4': ('car6', 2953, 3925), 'car6_5': ('car6', 3925, 4861),
    'car8_1': ('car8', 1, 1357), 'car8_2': ('car8', 1357, 2575),
    'car16_1': ('car16', 1, 415), 'car16_2': ('car16', 415, 1993),
    'group1_1': ('group1', 1, 1333), 'group1_2': ('group1', 1333, 2515),
    'group1_3': ('group1', 2515, 3925), 'group1_4': ('group1', 3925, 4873),
    'group2_1': ('group2', 1, 907), 'group2_2': ('group2', 907, 1771),
    'group2_3': ('group2', 1771, 2683),
    'group3_1': ('group3', 1, 1567), 'group3_2': ('group3', 1567, 2827),
    'group3_3': ('group3', 2827, 4369), 'group3_4': ('group3', 4369, 5527),
    'person2_1': ('person2', 1, 1189), 'person2_2': ('person2', 1189, 2623),
    'person4_1': ('person4', 1, 1501), 'person4_2': ('person4', 1501, 2743),
    'person5_1': ('person5', 1, 877), 'person5_2': ('person5', 877, 2101),
    'person7_1': ('person7', 1, 1249), 'person7_2': ('person7', 1249, 2065),
    'person8_1': ('person8', 1, 1075), 'person8_2': ('person8', 1075, 1525),
    'person12_1': ('person12', 1, 601), 'person12_2': ('person12', 601, 1621),
    'person14_1': ('person14', 1, 847), 'person14_2': ('person14', 847, 1813),
    'person14_3': ('person14', 1813, 2923),
    'person17_1': ('person17', 1, 1501), 'person17_2': ('person17', 1501, 2347),
    'person19_1': ('person19', 1, 1243), 'person19_2': ('person19', 1243, 2791),
    'person19_3': ('person19', 2791, 4357),
    'truck4_1': ('truck4', 1, 577), 'truck4_2': ('truck4', 577, 1261),
    'uav1_1': ('uav1', 1, 1555), 'uav1_2': ('uav1', 1555, 2377), 'uav1_3': ('uav1', 2473, 3469),
}

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

NFS_ANNOTATION_STRIDE = 8  # 240-fps annotations -> 30-fps frames

# --------------------------------------------------------------------------------------------
# Annotation files.

_SPLIT = re.compile(r'[,\s]+')


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


def _data_lines(path: Path) -> list[tuple[int, str]]:
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
    for line_no, text in _data_lines(path):
        tokens = [t for t in _SPLIT.split(text) if t]
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
    tokens = [t for t in _SPLIT.split(path.read_text(encoding='utf-8', errors='replace')) if t]
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


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _numbered_frames(folder: Path, first: int, last: int, digits: int,
                     suffix: str = '.jpg') -> list[str]:
    """Paths folder/<n zero-padded to `digits`><suffix> for n = first..last (not checked)."""
    return [os.path.join(folder, f'{n:0{digits}d}{suffix}') for n in range(first, last + 1)]


# --------------------------------------------------------------------------------------------
# Sequence selection.

Loader = Callable[[], Sequence]


def _pick(entries: list[tuple[str, Loader]], names: Seq[str] | None,
          benchmark: str) -> list[Sequence]:
    """Loads the entries named in `names` (in that order; all if None). KeyError for unknown."""
    if names is None:
        return [load() for _, load in entries]
    if isinstance(names, str):
        names = [names]
    by_name = dict(entries)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f'{benchmark}: unknown sequence(s) {missing}; available: '
                       f'{sorted(by_name)[:10]}{"..." if len(by_name) > 10 else ""}')
    return [by_name[n]() for n in names]


# --------------------------------------------------------------------------------------------
# OTB.

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
    boxes = read_number_rows(gt_path, (4,)).astype(np.float32)
    files = _image_files(img_dir)
    if seq_dir.name in OTB_FRAME_RANGES:
        first, last = OTB_FRAME_RANGES[seq_dir.name]
        if len(boxes) != last - first + 1:
            raise ValueError(f'{gt_path}: {len(boxes)} ground-truth lines but the official range '
                             f'of {seq_dir.name} is frames {first}..{last} '
                             f'({last - first + 1} frames)')
        digits = len(files[0].stem) if files else 4
        suffix = files[0].suffix if files else '.jpg'
        frames = _numbered_frames(img_dir, first, last, digits, suffix)
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


# --------------------------------------------------------------------------------------------
# LaSOT.

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
    boxes = read_number_rows(gt_path, (4,)).astype(np.float32)
    count = len(boxes)
    occluded = read_flags(seq_dir / 'full_occlusion.txt', count, 'LaSOT full_occlusion.txt')
    out_of_view = read_flags(seq_dir / 'out_of_view.txt', count, 'LaSOT out_of_view.txt')
    visible = (occluded == 0) & (out_of_view == 0)
    if strict:
        check_boxes(boxes, gt_path, visible)
    else:
        visible &= usable_boxes(boxes)
    frames = _numbered_frames(seq_dir / 'img', 1, count, 8)
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
        return [line for _, line in _data_lines(list_file)]
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


# --------------------------------------------------------------------------------------------
# GOT-10k.

def read_meta_info(path: str | os.PathLike) -> dict[str, str]:
    """GOT-10k meta_info.ini: '[METAINFO]' header then 'key: value' lines -> dict of strings."""
    meta = {}
    for _, text in _data_lines(Path(path)):
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
    boxes = read_number_rows(gt_path, (4,)).astype(np.float32)
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
        frames = _numbered_frames(seq_dir, 1, count, 8)
    else:
        count = len(_image_files(seq_dir))
        if count < len(boxes):
            raise ValueError(f'{gt_path}: {len(boxes)} ground-truth lines but only {count} '
                             f'frames in {seq_dir}')
        full = np.full((count, 4), np.nan, np.float32)
        full[:len(boxes)] = boxes
        boxes, visible = full, None
        check_boxes(boxes, gt_path, annotated=np.arange(count) < 1)
        frames = _numbered_frames(seq_dir, 1, count, 8)
    return Sequence(seq_dir.name, frames, boxes, visible, extra)


def got10k_sequence_names(split_dir: Path) -> list[str]:
    """Names from <split_dir>/list.txt, else the sub-folders, sorted."""
    list_file = split_dir / 'list.txt'
    if list_file.is_file():
        return [line for _, line in _data_lines(list_file)]
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir())


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


# --------------------------------------------------------------------------------------------
# TrackingNet.

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
    boxes = read_number_rows(anno_path, (4,), 'TrackingNet annotation file').astype(np.float32)
    if first_box_only:
        require_dir(frame_dir, 'TrackingNet frame folder')
        count = len(_image_files(frame_dir))
        if count < len(boxes):
            raise ValueError(f'{anno_path}: {len(boxes)} lines but only {count} frames in '
                             f'{frame_dir}')
        full = np.full((count, 4), np.nan, np.float32)
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


# --------------------------------------------------------------------------------------------
# UAV123.

def read_uav123_sequence(root: str | os.PathLike, name: str) -> Sequence:
    """One UAV123 sequence (or part of a split sequence).

    Layout: <root>/anno/UAV123/<name>.txt (x,y,w,h comma; 'NaN,NaN,NaN,NaN' where the target is
    out of view) and <root>/data_seq/UAV123/<folder>/%06d.jpg. Parts listed in
    UAV123_SPLIT_RANGES (bird1_1, car1_2, ...) read frames first..last of their folder; other
    sequences read frames 1..T of the folder of the same name. visible = no NaN in the row.
    """
    root = Path(root)
    anno_path = root / 'anno' / 'UAV123' / f'{name}.txt'
    boxes = read_number_rows(anno_path, (4,), 'UAV123 annotation file').astype(np.float32)
    folder, first = name, 1
    if name in UAV123_SPLIT_RANGES:
        folder, first, last = UAV123_SPLIT_RANGES[name]
        if len(boxes) != last - first + 1:
            raise ValueError(f'{anno_path}: {len(boxes)} lines but the official range of {name} '
                             f'is frames {first}..{last} ({last - first + 1} frames)')
    visible = ~np.isnan(boxes).any(axis=1)
    check_boxes(boxes, anno_path, visible)
    frames = _numbered_frames(root / 'data_seq' / 'UAV123' / folder, first,
                              first + len(boxes) - 1, 6)
    return Sequence(name, frames, boxes, visible, {'frame_range': (first, first + len(boxes) - 1)})


def _uav123_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """UAV123: names from <root>/anno/UAV123/*.txt (123 files in the official release)."""
    anno_dir = require_dir(root / 'anno' / 'UAV123', 'UAV123 annotation folder')
    names = sorted(p.stem for p in anno_dir.glob('*.txt'))
    return [(n, lambda n=n: read_uav123_sequence(root, n)) for n in names]


# --------------------------------------------------------------------------------------------
# NfS.

def read_nfs_annotation(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NfS annotation: 'id xmin ymin xmax ymax frame lost occluded generated "label"' per line.

    Returns: boxes [N, 4] float64 (x, y, w = xmax - xmin, h = ymax - ymin), lost [N] bool,
      occluded [N] bool. ValueError naming file and line on a malformed line.
    """
    path = require_file(path, 'NfS annotation file')
    boxes, lost, occluded = [], [], []
    for line_no, text in _data_lines(path):
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
    visible = not lost; extra 'occluded' [T] bool.
    """
    seq_dir = require_dir(seq_dir, 'NfS sequence folder')
    name = seq_dir.name
    frame_dir = require_dir(seq_dir / str(fps) / name, 'NfS frame folder')
    anno_path = seq_dir / str(fps) / f'{name}.txt'
    if not anno_path.is_file() and (seq_dir / '240' / f'{name}.txt').is_file():
        anno_path = seq_dir / '240' / f'{name}.txt'
    boxes, lost, occluded = read_nfs_annotation(anno_path)
    files = [str(p) for p in _image_files(frame_dir)]
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
    return Sequence(name, files, boxes.astype(np.float32), visible, {'occluded': occluded})


def _nfs_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """NfS: <root>/<seq>/30/<seq>/%05d.jpg + <root>/<seq>/30/<seq>.txt; root may be one <seq>."""
    if (root / '30' / root.name).is_dir():
        folders = [root]
    else:
        folders = sorted(p for p in root.iterdir() if (p / '30' / p.name).is_dir())
    return [(f.name, lambda f=f: read_nfs_sequence(f)) for f in folders]


# --------------------------------------------------------------------------------------------
# VOT.

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
    for line_no, text in _data_lines(path):
        try:
            values = np.asarray([float(t) for t in _SPLIT.split(text) if t], np.float64)
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
    x,y,w,h rectangle, see read_vot_regions) and frames <seq_dir>/color/00000001.jpg... or
    <seq_dir>/00000001.jpg...
    The image count must equal the GT line count. boxes = axis-aligned min/max box of the
    corners; extra 'polygons' [T, 8] float32 (rectangles are turned into their 4 corners).
    """
    seq_dir = require_dir(seq_dir, 'VOT sequence folder')
    gt_path = seq_dir / 'groundtruth.txt'
    polygons = read_vot_regions(gt_path)
    boxes = polygon_to_xywh(polygons).astype(np.float32)
    frame_dir = seq_dir / 'color' if (seq_dir / 'color').is_dir() else seq_dir
    files = [str(p) for p in _image_files(frame_dir)]
    if len(files) != len(boxes):
        relation = 'fewer' if len(boxes) < len(files) else 'more'
        raise ValueError(f'{gt_path}: {len(boxes)} ground-truth lines but {len(files)} frames in '
                         f'{frame_dir} ({relation} lines than frames)')
    check_boxes(boxes, gt_path)
    return Sequence(seq_dir.name, files, boxes, None, {'polygons': polygons.astype(np.float32)})


def _vot_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """VOT: <root>/list.txt + <root>/<seq>/...; root may be one sequence folder."""
    if (root / 'groundtruth.txt').is_file():
        return [(root.name, lambda: read_vot_sequence(root))]
    list_file = root / 'list.txt'
    if list_file.is_file():
        names = [line for _, line in _data_lines(list_file)]
    else:
        names = sorted(p.name for p in root.iterdir() if (p / 'groundtruth.txt').is_file())
    return [(n, lambda n=n: read_vot_sequence(root / n)) for n in names]


# --------------------------------------------------------------------------------------------
# Synthetic (tracking.data.synthetic, another module) and dispatch.

def _synthetic_entries(root: Path | None, split: str | None) -> list[tuple[str, Loader]]:
    """The TFDS synthetic set: tracking.data.synthetic.load_synthetic(split, data_dir=root)."""
    module = importlib.import_module('tracking.data.synthetic')
    loaded = module.load_synthetic(split or 'test', data_dir=None if root is None else str(root))
    return [(s.name, lambda s=s: s) for s in loaded]


_READERS = {
    'otb': _otb_entries,
    'lasot': _lasot_entries,
    'got10k': _got10k_entries,
    'trackingnet': _trackingnet_entries,
    'uav123': _uav123_entries,
    'nfs': _nfs_entries,
    'vot': _vot_entries,
    'synthetic': _synthetic_entries,
}
BENCHMARKS = tuple(_READERS)


def load_benchmark(name: str, root: str | os.PathLike | None, sequences: Seq[str] | None = None,
                   split: str | None = None) -> list[Sequence]:
    """Reads benchmark `name` from `root`.

    name: one of BENCHMARKS (case-insensitive; 'otb100', 'otb2015', 'got-10k', 'uav', 'nfs30',
      'vot2016'/'vot2018' are accepted aliases).
    sequences: names to load, in that order (KeyError for unknown ones); None loads all.
    split: lasot 'test' (default) or 'all'; got10k 'val' (default) or 'test'; trackingnet 'test'
      (default) or a chunk name; synthetic the TFDS split (default 'test').
    Returns: list of Sequence with frames as paths (read lazily).
    Raises: ValueError listing the known names for an unknown benchmark; FileNotFoundError
      naming the root or the missing annotation file; ValueError for bad ground truth.
    """
    key = canonical_benchmark(name)
    if key != 'synthetic':
        root = require_dir(root, f'{key} benchmark root')
    return _pick(_READERS[key](root, split), sequences, key)


_ALIASES = {'otb100': 'otb', 'otb2015': 'otb', 'uav': 'uav123', 'nfs30': 'nfs'}


def canonical_benchmark(name: str) -> str:
    """The benchmark's name as used everywhere here: 'OTB2015' -> 'otb', 'GOT-10k' -> 'got10k',
    'vot2018' -> 'vot'. Raises ValueError listing the known benchmarks for an unknown name."""
    key = name.lower().replace('-', '').replace('_', '')
    key = 'vot' if re.fullmatch(r'vot20\d\d', key) else _ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise ValueError(f'unknown benchmark {name!r}; known benchmarks: {", ".join(BENCHMARKS)}')
    return key


__all__ = ['BENCHMARKS', 'LASOT_TEST_SEQUENCES', 'OTB_FRAME_RANGES', 'UAV123_SPLIT_RANGES',
           'canonical_benchmark',
           'load_benchmark', 'check_boxes', 'read_number_rows', 'read_flags',
           'read_otb_sequence', 'read_lasot_sequence', 'read_got10k_sequence',
           'read_trackingnet_sequence', 'read_uav123_sequence', 'read_nfs_sequence',
           'read_vot_sequence', 'read_vot_regions']

