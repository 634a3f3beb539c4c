"""Training sets on disk -> `list[Sequence]` (small sets, tests) or a `DatasetIndex` (training).

`load_training_set(name, root)` for 'got10k_train', 'got10k_vot_train', 'lasot', 'trackingnet'
and 'coco'. Frames are read in place, lazily, by `Sequence.frame(i)`: nothing is copied or
decoded here (GOT-10k train alone is ~66 GB). Frame paths are built from the annotation line
counts rather than by listing folders, so loading the annotations of a whole set is quick.

`load_training_index(name, root, cache)` (what training uses, via `load_training_sequences`)
gives the same frames, boxes and visible flags as a compact memory-mapped index built once per
root with these readers (tracking/data/index.py): no per-sequence Python object, no path list.

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
from tracking.data import imagenet_vid
from tracking.data import index as index_lib
from tracking.data import youtube_vos
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


def read_coco_objects(root: str | os.PathLike, split: str = 'train2017') -> dict:
    """The non-crowd objects of COCO `split` as arrays (M objects, I images).

    Layout: <root>/annotations/instances_<split>.json and <root>/<split>/<file_name>.jpg.
    Returns dict: json_path Path, image_dir Path, ids [M] int64 (annotation ids), boxes [M, 4]
    float32 (x, y, w, h), image [M] int64 (index into the image lists), category_ids [M]
    (list, None where missing), segmentations [M] (list: the annotation's `segmentation` as
    written, polygons or RLE dict, None where missing), files (I file names), image_ids (I),
    image_sizes (I (W, H)).
    """
    root = bm.require_dir(root, 'COCO root')
    json_path = bm.require_file(root / 'annotations' / f'instances_{split}.json',
                                'COCO annotation file')
    with open(json_path, encoding='utf-8') as f:
        data = json.load(f)
    try:
        images = data['images']
        annotations = data['annotations']
        position = {im['id']: k for k, im in enumerate(images)}
    except (KeyError, TypeError):
        raise ValueError(f'{json_path}: expected "images" and "annotations" lists') from None
    ids, boxes, image, categories, segmentations = [], [], [], [], []
    for ann in annotations:
        if ann.get('iscrowd', 0):
            continue
        k = position.get(ann['image_id'])
        if k is None:
            raise ValueError(f'{json_path}: annotation {ann.get("id")} refers to unknown image '
                             f'{ann["image_id"]}')
        ids.append(ann['id'])
        boxes.append(np.asarray(ann['bbox'], np.float32).reshape(4))
        image.append(k)
        categories.append(ann.get('category_id'))
        segmentations.append(ann.get('segmentation'))
    return dict(json_path=json_path, image_dir=root / split, ids=np.asarray(ids, np.int64),
                boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                image=np.asarray(image, np.int64), category_ids=categories,
                segmentations=segmentations,
                files=[im['file_name'] for im in images], image_ids=[im['id'] for im in images],
                image_sizes=[(im.get('width'), im.get('height')) for im in images])


def load_coco(root: str | os.PathLike, split: str = 'train2017') -> list[Sequence]:
    """COCO objects as 1-frame sequences (`read_coco_objects` gives the layout).

    Each annotation with iscrowd 0 becomes Sequence(name f'coco_{annotation id}',
    frames [image path], boxes [[x, y, w, h]], visible [w > 0 and h > 0]) with extra
    'image_id', 'category_id', 'image_size' (W, H).
    """
    objects = read_coco_objects(root, split)
    image_dir = objects['image_dir']
    sequences = []
    for m, ann_id in enumerate(objects['ids']):
        k = int(objects['image'][m])
        box = objects['boxes'][m:m + 1]
        sequences.append(Sequence(
            f'coco_{ann_id}', [os.path.join(image_dir, objects['files'][k])], box,
            bm.usable_boxes(box),
            {'image_id': objects['image_ids'][k], 'category_id': objects['category_ids'][m],
             'image_size': objects['image_sizes'][k]}))
    return sequences


_LOADERS = {
    'imagenet_vid': imagenet_vid.load_imagenet_vid,
    'got10k_train': load_got10k_train,
    'got10k_vot_train': load_got10k_vot_train,
    'lasot': load_lasot_train,
    'trackingnet': load_trackingnet_train,
    'coco': load_coco,
    'youtube_vos': youtube_vos.load_youtube_vos,
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


# --------------------------------------------------------------------------------------------
# The training path: compact memory-mapped indexes (tracking.data.index).

def _relative(path: Path, root: Path) -> str:
    return str(Path(path).relative_to(root))


def _video_spec(name: str, root: Path, pattern: str, first: int, annotation_files,
                entries, read, options: str = '') -> index_lib.IndexSpec:
    """IndexSpec of a video set whose frame i is <root>/<folder>/<pattern with n = i + first>.

    entries: (frame folder, reader arguments) per sequence; read(*arguments) -> Sequence (the
    eager reader, so the index holds exactly its boxes and visible flags). The reader's first
    and last frame paths are checked against the pattern while building.
    """

    def build():
        records = []
        for folder, args in entries:
            seq = read(*args)
            rel = _relative(folder, root)
            for i in sorted({0, len(seq) - 1}) if len(seq) else ():
                expected = os.path.join(str(root / rel), index_lib.frame_name(pattern, i + first))
                if str(seq.frames[i]) != expected:
                    raise RuntimeError(f'{name} index: frame {i} of {seq.name} is '
                                       f'{seq.frames[i]}, the index pattern gives {expected}')
            records.append((seq.name, rel, seq.boxes, seq.visible))
        return index_lib.arrays_from_sequences(records)

    return index_lib.IndexSpec(name, root, pattern, first, annotation_files, build, options)


def _got10k_spec(name: str, root: Path) -> index_lib.IndexSpec:
    split_dir = bm.got10k_split_dir(bm.require_dir(root, 'GOT-10k root'), 'train')
    all_names = bm.got10k_sequence_names(split_dir)
    lists = [split_dir / 'list.txt']
    names = all_names
    if name == 'got10k_vot_train':
        names = got10k_vot_train_names(root, all_names)
        lists += [d / f for d in (root, root / 'train') for f in GOT10K_VOT_SPLIT_FILES]
    files = lists + [split_dir / n / f for n in names
                     for f in ('groundtruth.txt', 'absence.label', 'cover.label')]
    entries = [(split_dir / n, (split_dir / n,)) for n in names]
    return _video_spec(name, root, '{n:08d}.jpg', 1, files, entries,
                       lambda d: bm.read_got10k_sequence(d, labels=True, strict=False))


def _lasot_spec(name: str, root: Path) -> index_lib.IndexSpec:
    root = bm.require_dir(root, 'LaSOT root')
    dirs = [bm.lasot_sequence_dir(root, n) for n in lasot_train_names(root)]
    files = [root / 'training_set.txt', root / 'testing_set.txt'] + [
        d / f for d in dirs for f in ('groundtruth.txt', 'full_occlusion.txt', 'out_of_view.txt')]
    entries = [(d / 'img', (d,)) for d in dirs]
    return _video_spec(name, root, '{n:08d}.jpg', 1, files, entries,
                       lambda d: bm.read_lasot_sequence(d, strict=False))


def _trackingnet_spec(name: str, root: Path) -> index_lib.IndexSpec:
    root = bm.require_dir(root, 'TrackingNet root')
    chunks = [root / c for c in TRACKINGNET_TRAIN_CHUNKS if (root / c).is_dir()]
    if not chunks:
        raise FileNotFoundError(f'no TrackingNet training chunk found: {root / "TRAIN_0"} '
                                '(expected TRAIN_0..TRAIN_11)')
    pairs = [(chunk, n) for chunk in chunks for n in bm.trackingnet_names(chunk)]
    files = [chunk / 'anno' / f'{n}.txt' for chunk, n in pairs]
    entries = [(chunk / 'frames' / n, (chunk, n)) for chunk, n in pairs]
    return _video_spec(name, root, '{n}.jpg', 0, files, entries,
                       lambda chunk, n: bm.read_trackingnet_sequence(
                           chunk, n, first_box_only=False, strict=False))


def _coco_spec(name: str, root: Path, split: str = 'train2017') -> index_lib.IndexSpec:
    root = bm.require_dir(root, 'COCO root')
    json_path = bm.require_file(root / 'annotations' / f'instances_{split}.json',
                                'COCO annotation file')

    def build():
        objects = read_coco_objects(root, split)
        count = len(objects['ids'])
        return index_lib.IndexArrays(
            names=[f'coco_{i}' for i in objects['ids']], dirs=[split],
            seq_dir=np.zeros(count, np.int32), lengths=np.ones(count, np.int64),
            boxes=objects['boxes'], visible=bm.usable_boxes(objects['boxes']),
            files=objects['files'], frame_file=objects['image'].astype(np.int32),
            masks=coco_mask_records(objects))

    return index_lib.IndexSpec(name, root, '{file}', 0, [json_path], build, split)


def coco_mask_records(objects: dict) -> index_lib.MaskRecords:
    """The objects' segmentations (`read_coco_objects`) as index mask records: polygons as
    their ring coordinates, RLE (compressed strings decoded) as run lengths; no mask where an
    annotation has no segmentation. ValueError names the annotation file and id."""
    from tracking.data.masks import MaskError, rle_string_to_counts

    records = index_lib.MaskRecords()
    for m, segmentation in enumerate(objects['segmentations']):
        where = f'{objects["json_path"]}: annotation {int(objects["ids"][m])}'
        width, height = objects['image_sizes'][int(objects['image'][m])]
        if not segmentation:
            records.none()
            continue
        if width is None or height is None:
            raise ValueError(f'{where}: its image has no width/height, needed for its mask')
        try:
            if isinstance(segmentation, dict):
                size = segmentation.get('size', [height, width])
                if [int(size[0]), int(size[1])] != [int(height), int(width)]:
                    raise MaskError(f'RLE size {list(size)}, image size {[height, width]}')
                counts = segmentation['counts']
                if isinstance(counts, str):
                    counts = rle_string_to_counts(counts)
                counts = np.asarray(counts, np.int64)
                if int(counts.sum()) != int(height) * int(width):
                    raise MaskError(f'RLE covers {int(counts.sum())} pixels, the image '
                                    f'{height} x {width}')
                records.rle(counts, height, width)
            elif isinstance(segmentation, list):
                records.polygons(segmentation, height, width)
            else:
                raise MaskError(f'unknown segmentation type {type(segmentation).__name__}')
        except (MaskError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f'{where}: bad segmentation: {e}') from None
    return records


_INDEX_SPECS = {
    'imagenet_vid': imagenet_vid.index_spec,
    'got10k_train': _got10k_spec,
    'got10k_vot_train': _got10k_spec,
    'lasot': _lasot_spec,
    'trackingnet': _trackingnet_spec,
    'coco': _coco_spec,
    'youtube_vos': youtube_vos.youtube_vos_spec,
}


def training_index_spec(name: str, root: str | os.PathLike) -> index_lib.IndexSpec:
    """What the index of training set `name` on `root` is read from (see tracking.data.index)."""
    if name not in _INDEX_SPECS:
        raise ValueError(f'unknown training set {name!r}; known: {", ".join(TRAINING_SETS)}')
    return _INDEX_SPECS[name](name, Path(root))


def load_training_index(name: str, root: str | os.PathLike,
                        cache: str | os.PathLike | None = None) -> index_lib.DatasetIndex:
    """Training set `name` as a memory-mapped `DatasetIndex`, built on first use.

    The index holds the same frame paths, boxes and visible flags as `load_training_set`
    (extras such as GOT-10k 'cover' or COCO 'category_id' are not kept). cache: the index
    folder (config.data.index_cache); default $TRACKING_INDEX_CACHE, else <root>/.tracking_index,
    else the user cache folder. Errors as `load_training_set` (they name the root, folder,
    file and line).
    """
    return index_lib.open_index(training_index_spec(name, root), cache)


def load_training_sequences(name: str, data_config):
    """Training set `name` for the pair samplers: a `DatasetIndex` (memory-mapped, built on
    first use in config.data.index_cache) for the sets on disk, a list of `Sequence` for
    'synthetic' (the embedded TFDS dataset)."""
    roots = data_config.roots
    if name == 'synthetic':
        from tracking.data.synthetic import load_synthetic
        return load_synthetic('train', roots.get('synthetic') or None)
    root_key = 'got10k' if name.startswith('got10k') else name
    root = roots.get(root_key, '') if root_key in roots else ''
    if not root:
        raise ValueError(f'training set {name!r} needs config.data.roots.{root_key} '
                         '(the folder holding it)')
    if name not in _INDEX_SPECS:
        raise ValueError(f'unknown training set {name!r}; known: {", ".join(TRAINING_SETS)}')
    return load_training_index(name, root, getattr(data_config, 'index_cache', None) or None)
