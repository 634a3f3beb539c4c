"""Training sets on disk -> `list[Sequence]`.

`load_training_set(name, root)` for 'got10k_train', 'got10k_vot_train', 'lasot', 'trackingnet'
and 'coco'. Frames are read in place, lazily, by `Sequence.frame(i)`: nothing is copied or
decoded here (GOT-10k train alone is ~66 GB). Frame paths are built from the annotation line
counts rather than by listing folders, so loading the annotations of a whole set is quick.

`visible` [T] bool comes from each set's absence/occlusion labels and is also False where a
box is NaN or has non-positive width/height (training readers never raise on such boxes, they
only mark the frame unusable). Boxes: [T, 4] float32 (x, y, w, h) in pixels as written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tracking.data import benchmarks as bm
from tracking.data.sequence import Sequence

GOT10K_VOT_SPLIT_FILES = ('got10k_vot_train_split.txt', 'got10kvot_train_split.txt')
TRACKINGNET_TRAIN_CHUNKS = tuple(f'TRAIN_{k}' for k in range(12))


def load_got10k_train(root: str | os.PathLike) -> list[Sequence]:
    """GOT-10k train (9,335 sequences in the official release).

    Layout: <root>/train/list.txt (optional; else the sub-folders, sorted) and
    <root>/train/<GOT-10k_Train_xxxxxx>/{00000001.jpg..., groundtruth.txt, absence.label,
    cover.label, meta_info.ini}. visible = (absence == 0) & (cover > 0) & usable box.
    """
    split_dir = bm.got10k_split_dir(bm.require_dir(root, 'GOT-10k root'), 'train')
    return [bm.read_got10k_sequence(split_dir / n, labels=True, strict=False)
            for n in bm.got10k_sequence_names(split_dir)]


def got10k_vot_train_names(root: str | os.PathLike, all_names: list[str]) -> list[str]:
    """The GOT-10k train subset without the sequences that overlap VOT (7,086 in the usual split).

    The list is NOT shipped here: the user must put the split file in <root> (or <root>/train),
    named got10k_vot_train_split.txt (pytracking calls it got10kvot_train_split.txt). Each line is
    either a sequence name ('GOT-10k_Train_000001') or a 0-based integer index into the train
    list (<root>/train/list.txt order), which is pytracking's convention.
    """
    root = Path(root)
    candidates = [d / f for d in (root, root / 'train') for f in GOT10K_VOT_SPLIT_FILES]
    split_file = next((p for p in candidates if p.is_file()), None)
    if split_file is None:
        raise FileNotFoundError(f'GOT-10k VOT-free split file not found: {candidates[0]} (supply '
                                'the list of the 7086 training sequence ids that exclude VOT '
                                'overlaps; it is not distributed with this library)')
    names = []
    for line_no, text in enumerate(split_file.read_text().splitlines(), 1):
        text = text.strip()
        if not text:
            continue
        if text.isdigit():
            index = int(text)
            if index >= len(all_names):
                raise ValueError(f'{split_file}, line {line_no}: index {index} out of range for '
                                 f'{len(all_names)} train sequences')
            names.append(all_names[index])
        else:
            names.append(text)
    return names


def load_got10k_vot_train(root: str | os.PathLike) -> list[Sequence]:
    """GOT-10k train restricted to the ids in the user-supplied VOT-free split file."""
    split_dir = bm.got10k_split_dir(bm.require_dir(root, 'GOT-10k root'), 'train')
    names = got10k_vot_train_names(root, bm.got10k_sequence_names(split_dir))
    return [bm.read_got10k_sequence(split_dir / n, labels=True, strict=False) for n in names]


def lasot_train_names(root: Path) -> list[str]:
    """<root>/training_set.txt if present, else every sequence on disk not in the test list."""
    list_file = root / 'training_set.txt'
    if list_file.is_file():
        return [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    test = set(bm.lasot_test_names(root))
    return [n for n in bm.lasot_names_on_disk(root) if n not in test]


def load_lasot_train(root: str | os.PathLike) -> list[Sequence]:
    """LaSOT train split (1,120 sequences in the official release).

    Layout: <root>/<category>/<category>-<n>/{img/00000001.jpg..., groundtruth.txt,
    full_occlusion.txt, out_of_view.txt}. Names from <root>/training_set.txt if present, else all
    sequences under root minus the 280 test sequences (tracking.data.benchmarks list, or
    <root>/testing_set.txt). visible = not (full_occlusion or out_of_view) and usable box.
    """
    root = bm.require_dir(root, 'LaSOT root')
    return [bm.read_lasot_sequence(bm.lasot_sequence_dir(root, n), strict=False)
            for n in lasot_train_names(root)]


def load_trackingnet_train(root: str | os.PathLike) -> list[Sequence]:
    """TrackingNet train chunks TRAIN_0..TRAIN_11 (the ones present; at least one required).

    Layout: <root>/TRAIN_k/frames/<seq>/0.jpg, 1.jpg, ... (0-based) and
    <root>/TRAIN_k/anno/<seq>.txt (x,y,w,h comma, one line per frame). extra 'chunk' = 'TRAIN_k'.
    """
    root = bm.require_dir(root, 'TrackingNet root')
    chunks = [root / c for c in TRACKINGNET_TRAIN_CHUNKS if (root / c).is_dir()]
    if not chunks:
        raise FileNotFoundError(f'no TrackingNet training chunk found: {root / "TRAIN_0"} '
                                '(expected TRAIN_0..TRAIN_11)')
    return [bm.read_trackingnet_sequence(chunk, n, first_box_only=False, strict=False)
            for chunk in chunks for n in bm.trackingnet_names(chunk)]


def load_coco(root: str | os.PathLike, split: str = 'train2017') -> list[Sequence]:
    """COCO objects as 1-frame sequences.

    Layout: <root>/annotations/instances_<split>.json and <root>/<split>/<file_name>.jpg.
    Each annotation with iscrowd 0 becomes Sequence(name f'coco_{annotation id}',
    frames [image path], boxes [[x, y, w, h]], visible [w > 0 and h > 0]) with extra
    'image_id', 'category_id', 'image_size' (W, H).
    """
    root = bm.require_dir(root, 'COCO root')
    json_path = bm.require_file(root / 'annotations' / f'instances_{split}.json',
                                'COCO annotation file')
    with open(json_path, encoding='utf-8') as f:
        data = json.load(f)
    try:
        images = {im['id']: im for im in data['images']}
        annotations = data['annotations']
    except (KeyError, TypeError):
        raise ValueError(f'{json_path}: expected "images" and "annotations" lists') from None
    image_dir = root / split
    sequences = []
    for ann in annotations:
        if ann.get('iscrowd', 0):
            continue
        image = images.get(ann['image_id'])
        if image is None:
            raise ValueError(f'{json_path}: annotation {ann.get("id")} refers to unknown image '
                             f'{ann["image_id"]}')
        box = np.asarray(ann['bbox'], np.float32).reshape(1, 4)
        sequences.append(Sequence(
            f'coco_{ann["id"]}', [os.path.join(image_dir, image['file_name'])], box,
            bm.usable_boxes(box),
            {'image_id': image['id'], 'category_id': ann.get('category_id'),
             'image_size': (image.get('width'), image.get('height'))}))
    return sequences


_LOADERS = {
    'got10k_train': load_got10k_train,
    'got10k_vot_train': load_got10k_vot_train,
    'lasot': load_lasot_train,
    'trackingnet': load_trackingnet_train,
    'coco': load_coco,
}
TRAINING_SETS = tuple(_LOADERS)


def load_training_set(name: str, root: str | os.PathLike) -> list[Sequence]:
    """Reads training set `name` (one of TRAINING_SETS) from `root` -> list of Sequence.

    Raises ValueError listing the known names for an unknown set; FileNotFoundError naming the
    missing root, folder or annotation file.
    """
    if name not in _LOADERS:
        raise ValueError(f'unknown training set {name!r}; known: {", ".join(TRAINING_SETS)}')
    return _LOADERS[name](root)


def load_training_sequences(name: str, data_config) -> list:
    """Sequences of training set `name`; 'synthetic' is the embedded TFDS dataset."""
    roots = data_config.roots
    if name == 'synthetic':
        from tracking.data.synthetic import load_synthetic
        return load_synthetic('train', roots.get('synthetic') or None)
    root_key = 'got10k' if name.startswith('got10k') else name
    root = roots.get(root_key, '') if root_key in roots else ''
    if not root:
        raise ValueError(f'training set {name!r} needs config.data.roots.{root_key} '
                         '(the folder holding it)')
    return load_training_set(name, root)
