"""YouTube-VOS (2018/2019) as a training set with masks: one sequence per (video, object).

Layout (the official release's train split):
  <root>/train/meta.json                       {"videos": {<vid>: {"objects": {<id>: {
                                                 "category": ..., "frames": ["00000", ...]}}}}}
  <root>/train/JPEGImages/<vid>/<frame>.jpg
  <root>/train/Annotations/<vid>/<frame>.png   palette PNG, pixel value = object id (0 background)
Sequence `<vid>_<id>` has the frames its object lists in meta.json (train annotations are every
5th frame), in that order. Its box on a frame is the bounding box of the object's pixels in the
frame's label PNG ((x, y, w, h), pixel j covering [j, j + 1)); a frame where the object has no
pixel gets a NaN box and visible False. Boxes need every label PNG once (when the index is
built, or by `load_youtube_vos`); masks are read again per sample, one PNG at a time.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tracking.data import benchmarks as bm
from tracking.data import index as index_lib
from tracking.data.masks import box_of_mask, read_label_png
from tracking.data.sequence import Sequence


def read_youtube_vos(root: str | os.PathLike, split: str = 'train') -> list[dict]:
    """One record per (video, object), sorted by video then object id: dict(name, video,
    object_id int, frames (frame names, e.g. '00005'), boxes [T, 4] float32, visible [T] bool).
    FileNotFoundError / ValueError name the meta.json or PNG at fault."""
    root = bm.require_dir(root, 'YouTube-VOS root')
    meta_path = bm.require_file(root / split / 'meta.json', 'YouTube-VOS meta.json')
    with open(meta_path, encoding='utf-8') as f:
        meta = json.load(f)
    try:
        videos = meta['videos']
        items = sorted(videos.items())
    except (KeyError, TypeError, AttributeError):
        raise ValueError(f'{meta_path}: expected {{"videos": {{<video>: {{"objects": ...}}}}}}') \
            from None
    records = []
    for video, entry in items:
        try:
            objects = sorted(entry['objects'].items(), key=lambda kv: int(kv[0]))
        except (KeyError, TypeError, AttributeError, ValueError):
            raise ValueError(f'{meta_path}: video {video}: expected "objects" keyed by integer '
                             'ids') from None
        labels: dict[str, np.ndarray] = {}      # each PNG of the video read once

        def label(frame: str) -> np.ndarray:
            if frame not in labels:
                labels[frame] = read_label_png(root / split / 'Annotations' / video /
                                               f'{frame}.png')
            return labels[frame]

        for object_id, obj in objects:
            frames = [str(f) for f in obj.get('frames', [])]
            oid = int(object_id)
            boxes = np.stack([box_of_mask(label(f) == oid) for f in frames]) if frames \
                else np.zeros((0, 4), np.float32)
            records.append(dict(name=f'{video}_{oid}', video=video, object_id=oid, frames=frames,
                                boxes=boxes, visible=bm.usable_boxes(boxes)))
    return records


def load_youtube_vos(root: str | os.PathLike, split: str = 'train') -> list[Sequence]:
    """YouTube-VOS objects as Sequences (frame paths; extra 'video', 'object_id' and
    'mask_paths', the label PNG of each frame, read by `tracking.data.masks.sequence_mask`)."""
    root = Path(root)
    sequences = []
    for r in read_youtube_vos(root, split):
        frames = [str(root / split / 'JPEGImages' / r['video'] / f'{f}.jpg') for f in r['frames']]
        masks = [str(root / split / 'Annotations' / r['video'] / f'{f}.png') for f in r['frames']]
        sequences.append(Sequence(r['name'], frames, r['boxes'], r['visible'],
                                  {'video': r['video'], 'object_id': r['object_id'],
                                   'mask_paths': masks}))
    return sequences


def youtube_vos_spec(name: str, root: str | os.PathLike,
                     split: str = 'train') -> index_lib.IndexSpec:
    """Index spec: frames '<split>/JPEGImages/<vid>/{file}', masks kind PNG with the object id."""
    root = bm.require_dir(root, 'YouTube-VOS root')
    meta_path = bm.require_file(root / split / 'meta.json', 'YouTube-VOS meta.json')

    def build():
        records = read_youtube_vos(root, split)
        videos = sorted({r['video'] for r in records})
        video_dir = {v: k for k, v in enumerate(videos)}
        files, file_id = [], {}
        frame_file = []
        masks = index_lib.MaskRecords()
        for r in records:
            for f in r['frames']:
                name = f'{f}.jpg'
                if name not in file_id:
                    file_id[name] = len(files)
                    files.append(name)
                frame_file.append(file_id[name])
                masks.png(f'{split}/Annotations/{r["video"]}/{f}.png', r['object_id'])
        boxes = np.concatenate([r['boxes'] for r in records]) if records \
            else np.zeros((0, 4), np.float32)
        visible = np.concatenate([r['visible'] for r in records]) if records \
            else np.zeros(0, bool)
        return index_lib.IndexArrays(
            names=[r['name'] for r in records],
            dirs=[f'{split}/JPEGImages/{v}' for v in videos],
            seq_dir=np.asarray([video_dir[r['video']] for r in records], np.int32),
            lengths=np.asarray([len(r['frames']) for r in records], np.int64),
            boxes=boxes, visible=visible, files=files,
            frame_file=np.asarray(frame_file, np.int32), masks=masks)

    # The fingerprint covers meta.json and the label PNGs it lists (boxes come from them).
    with open(meta_path, encoding='utf-8') as f:
        meta = json.load(f)
    pngs = sorted({root / split / 'Annotations' / v / f'{frame}.png'
                   for v, entry in (meta.get('videos') or {}).items()
                   for obj in (entry.get('objects') or {}).values()
                   for frame in obj.get('frames', [])})
    return index_lib.IndexSpec(name, root, '{file}', 0, [meta_path] + pngs, build, split)
