"""ImageNet VID (ILSVRC2015) reader: one `Sequence` per (video, track id), as ROAM trains on it.

On-disk layout (the ILSVRC2015 release; `root` holds Annotations/ and Data/):

    <root>/Data/VID/train/<subset>/<video>/<frame>.JPEG        subset e.g. ILSVRC2015_VID_train_0000
    <root>/Annotations/VID/train/<subset>/<video>/<frame>.xml
    <root>/Data/VID/val/<video>/<frame>.JPEG,  <root>/Annotations/VID/val/<video>/<frame>.xml

Each frame's XML lists any number of <object> elements with <trackid>, <name> (the WordNet
category), <bndbox> <xmin> <ymin> <xmax> <ymax> (inclusive pixel corners), <occluded>,
<generated>. Frames are 000000, 000001, ... with one XML each (a frame without objects has no
<object>).

Like the official make_vid_info.py, every track id of a video is its own sequence (a training
clip is drawn from one track), with box (xmin, ymin, xmax - xmin + 1, ymax - ymin + 1) and
visible = the track is annotated in that frame with w, h > 0 (the official ignores <occluded>).
Differences from make_vid_info.py, on purpose:
- a sequence spans all frames of the video, and frames where its track is missing are NaN
  boxes with visible False (the official lists only the annotated frames and then reads the
  image `start_frame - 1 + index`, i.e. the wrong frame after a gap);
- track ids are not capped at 50;
- the >= 50-frame filter is the sampler's (config.data.min_track_length), not the reader's.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from tracking.data.sequence import Sequence

SPLITS = ('train', 'val')
_BOX_FIELDS = ('xmin', 'ymin', 'xmax', 'ymax')


def parse_frame_xml(path: str | os.PathLike) -> dict:
    """One frame's annotation -> {trackid: (name, box (x, y, w, h) float64, occluded)};
    image_size (W, H) under key None when present. ValueError naming the file (and object)
    for malformed XML, a missing/non-numeric field or a track id listed twice."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise ValueError(f'{path}: cannot parse the VID annotation: {e}') from None
    out = {}
    size = root.find('size')
    if size is not None and size.findtext('width') and size.findtext('height'):
        out[None] = (int(size.findtext('width')), int(size.findtext('height')))
    for k, obj in enumerate(root.findall('object')):
        try:
            trackid = int(obj.findtext('trackid'))
            bndbox = obj.find('bndbox')
            xmin, ymin, xmax, ymax = (float(bndbox.findtext(f)) for f in _BOX_FIELDS)
        except (TypeError, ValueError, AttributeError):
            raise ValueError(f'{path}: object {k} lacks a numeric <trackid> or <bndbox> '
                             f'{"/".join(_BOX_FIELDS)}') from None
        if trackid in out:
            raise ValueError(f'{path}: track id {trackid} appears twice')
        box = np.array([xmin, ymin, xmax - xmin + 1, ymax - ymin + 1], np.float64)
        out[trackid] = (obj.findtext('name') or '', box, obj.findtext('occluded') == '1')
    return out


def video_dirs(root: str | os.PathLike, split: str = 'train') -> list[tuple[Path, Path, str]]:
    """[(annotation folder, frame folder, 'subset/video' or 'video')] of a split, sorted."""
    if split not in SPLITS:
        raise ValueError(f'ImageNet VID: unknown split {split!r}; choose one of {SPLITS}')
    root = Path(root)
    anno = root / 'Annotations' / 'VID' / split
    if not anno.is_dir():
        raise FileNotFoundError(f'ImageNet VID: no annotation folder {anno} (expected the '
                                'ILSVRC2015 layout <root>/Annotations/VID/<split>/...)')
    data = root / 'Data' / 'VID' / split
    if split == 'val':
        return [(anno / v, data / v, v) for v in sorted(os.listdir(anno)) if (anno / v).is_dir()]
    out = []
    for subset in sorted(os.listdir(anno)):
        if not (anno / subset).is_dir():
            continue
        for v in sorted(os.listdir(anno / subset)):
            if (anno / subset / v).is_dir():
                out.append((anno / subset / v, data / subset / v, f'{subset}/{v}'))
    return out


def frame_stems(anno_dir: Path) -> list[str]:
    """Sorted frame names (XML stems) of a video; ValueError if it has none."""
    stems = sorted(f[:-4] for f in os.listdir(anno_dir) if f.endswith('.xml'))
    if not stems:
        raise ValueError(f'ImageNet VID: no .xml annotation in {anno_dir}')
    return stems


def read_video(anno_dir: str | os.PathLike, data_dir: str | os.PathLike, name: str
               ) -> list[Sequence]:
    """The sequences (one per track id, sorted by id) of one video. Each spans every frame:
    boxes [T, 4] float64 (NaN where the track is not annotated), visible [T] bool; extra
    {'trackid', 'category' (first <name>), 'occluded' [T] bool, 'image_size' (W, H) or None}."""
    anno_dir, data_dir = Path(anno_dir), Path(data_dir)
    stems = frame_stems(anno_dir)
    frames = [parse_frame_xml(anno_dir / f'{s}.xml') for s in stems]
    paths = [str(data_dir / f'{s}.JPEG') for s in stems]
    size = next((f[None] for f in frames if None in f), None)
    ids = sorted({k for f in frames for k in f if k is not None})
    out = []
    for tid in ids:
        boxes = np.full((len(stems), 4), np.nan)
        occluded = np.zeros(len(stems), bool)
        category = ''
        for i, f in enumerate(frames):
            if tid in f:
                category = category or f[tid][0]
                boxes[i] = f[tid][1]
                occluded[i] = f[tid][2]
        visible = np.isfinite(boxes[:, 0]) & (np.nan_to_num(boxes[:, 2]) > 0) \
            & (np.nan_to_num(boxes[:, 3]) > 0)
        out.append(Sequence(f'{name}/{tid}', paths, boxes, visible,
                            {'trackid': tid, 'category': category, 'occluded': occluded,
                             'image_size': size}))
    return out


def load_imagenet_vid(root: str | os.PathLike, split: str = 'train') -> list[Sequence]:
    """Every track of every video of `split` (see the module docstring)."""
    return [seq for a, d, name in video_dirs(root, split) for seq in read_video(a, d, name)]


def index_spec(name: str, root: str | os.PathLike, split: str = 'train'):
    """IndexSpec for tracking.data.index: frames '<Data/VID/split/video>/{n:06d}.JPEG' (frame
    names must be 000000, 000001, ... -- checked while building)."""
    from tracking.data import index as index_lib

    root = Path(root)
    videos = video_dirs(root, split)
    files = [a / f for a, _, _ in videos for f in sorted(os.listdir(a)) if f.endswith('.xml')]

    def build():
        records = []
        for anno_dir, data_dir, vname in videos:
            stems = frame_stems(anno_dir)
            if stems != [f'{i:06d}' for i in range(len(stems))]:
                raise ValueError(f'ImageNet VID index: {anno_dir}: frames must be 000000, '
                                 f'000001, ... without gaps; got {stems[:3]}...')
            rel = str(data_dir.relative_to(root))
            for seq in read_video(anno_dir, data_dir, vname):
                records.append((seq.name, rel, seq.boxes, seq.visible))
        return index_lib.arrays_from_sequences(records)

    return index_lib.IndexSpec(name, root, '{n:06d}.JPEG', 0, files, build, split)
