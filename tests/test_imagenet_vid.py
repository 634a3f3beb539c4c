"""ImageNet VID reader (tracking/data/imagenet_vid.py) on a small fake ILSVRC2015 tree written
here in the exact layout: several objects per frame, a track missing in some frames, a frame
without objects, the val layout, malformed annotations; then the memory-mapped index and a
ROAM training clip drawn from it."""
from pathlib import Path

import numpy as np
import pytest

from helpers import FAKE_H, FAKE_W, check_frame, write_jpeg
from tracking.data import imagenet_vid as vid
from tracking.data.datasets import load_training_index, load_training_set

SUBSET = 'ILSVRC2015_VID_train_0000'


def _object(trackid, name, box, occluded=0):
    xmin, ymin, xmax, ymax = box
    return (f'<object><trackid>{trackid}</trackid><name>{name}</name><bndbox>'
            f'<xmax>{xmax}</xmax><xmin>{xmin}</xmin><ymax>{ymax}</ymax><ymin>{ymin}</ymin>'
            f'</bndbox><occluded>{occluded}</occluded><generated>0</generated></object>')


def _frame_xml(folder, stem, objects):
    return (f'<annotation><folder>{folder}</folder><filename>{stem}</filename>'
            f'<source><database>ILSVRC_2015</database></source>'
            f'<size><width>{FAKE_W}</width><height>{FAKE_H}</height></size>'
            + ''.join(objects) + '</annotation>')


def write_video(root, split, video, objects_per_frame, subset=SUBSET):
    """objects_per_frame: list (one per frame) of lists of (trackid, name, box, occluded)."""
    rel = f'{subset}/{video}' if split == 'train' else video
    for i, objs in enumerate(objects_per_frame):
        stem = f'{i:06d}'
        write_jpeg(Path(root) / 'Data' / 'VID' / split / rel / f'{stem}.JPEG', level=10 * (i % 20))
        xml = Path(root) / 'Annotations' / 'VID' / split / rel / f'{stem}.xml'
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(_frame_xml(rel, stem, [_object(*o) for o in objs]))


def _fake_tree(root, n=36):
    """Video a: track 0 in every frame; track 3 missing in frames 5-7, occluded in frame 2,
    one pixel wide in frame 12. Video b (another subset): frame 1 has no object. One val
    video."""
    frames = []
    for i in range(n):
        objs = [(0, 'n02691156', (2 + i % 3, 3, 12, 15))]
        if not 5 <= i <= 7:
            box = (10, 4, 10, 20) if i == 12 else (10, 4, 20, 20)   # frame 12: w = 1 (10..10)
            objs.append((3, 'n02834778', box, int(i == 2)))
        frames.append(objs)
    write_video(root, 'train', 'ILSVRC2015_train_00000000', frames)
    write_video(root, 'train', 'ILSVRC2015_train_00010001',
                [[(1, 'n01503061', (0, 0, 9, 9))], [], [(1, 'n01503061', (1, 1, 9, 9))]],
                subset='ILSVRC2015_VID_train_0001')
    write_video(root, 'val', 'ILSVRC2015_val_00000000', [[(0, 'n01662784', (4, 4, 7, 9))]] * 3)


def test_reader_tracks_boxes_and_missing_frames(tmp_path):
    _fake_tree(tmp_path)
    seqs = load_training_set('imagenet_vid', tmp_path)
    names = [s.name for s in seqs]
    assert names == [f'{SUBSET}/ILSVRC2015_train_00000000/0', f'{SUBSET}/ILSVRC2015_train_00000000/3',
                     'ILSVRC2015_VID_train_0001/ILSVRC2015_train_00010001/1']
    a0, a3, b1 = seqs
    assert len(a0) == len(a3) == 36 and len(b1) == 3
    # inclusive corners -> (x, y, w, h)
    np.testing.assert_array_equal(a0.boxes[1], [3, 3, 10, 13])
    np.testing.assert_array_equal(a3.boxes[0], [10, 4, 11, 17])
    assert np.all(np.isnan(a3.boxes[5:8])) and not a3.visible[5:8].any()
    assert a3.visible[12] and a3.boxes[12, 2] == 1     # xmin == xmax: one pixel wide
    assert a3.extra['occluded'][2] and a3.visible[2]   # <occluded> does not hide (official)
    assert a3.extra['category'] == 'n02834778' and a3.extra['trackid'] == 3
    assert a0.visible.all()
    assert not b1.visible[1] and b1.visible[[0, 2]].all()
    assert a3.frames[4].endswith(f'Data/VID/train/{SUBSET}/ILSVRC2015_train_00000000/000004.JPEG')
    check_frame(a0, 4, level=40)
    val = vid.load_imagenet_vid(tmp_path, 'val')
    assert [s.name for s in val] == ['ILSVRC2015_val_00000000/0']


def test_reader_errors_name_the_file(tmp_path):
    _fake_tree(tmp_path)
    bad = (tmp_path / 'Annotations/VID/train' / SUBSET / 'ILSVRC2015_train_00000000' /
           '000003.xml')
    bad.write_text(_frame_xml('x', '000003', [_object(0, 'a', (1, 1, 5, 5)),
                                              _object(0, 'a', (2, 2, 5, 5))]))
    with pytest.raises(ValueError, match='000003.xml: track id 0 appears twice'):
        load_training_set('imagenet_vid', tmp_path)
    bad.write_text('<annotation><object><trackid>0</trackid></object></annotation>')
    with pytest.raises(ValueError, match='000003.xml: object 0 lacks'):
        load_training_set('imagenet_vid', tmp_path)
    bad.write_text('<annotation>')
    with pytest.raises(ValueError, match='000003.xml: cannot parse'):
        load_training_set('imagenet_vid', tmp_path)
    with pytest.raises(FileNotFoundError, match='Annotations/VID/train'):
        load_training_set('imagenet_vid', tmp_path / 'nowhere')
    with pytest.raises(ValueError, match='unknown split'):
        vid.load_imagenet_vid(tmp_path, 'test')


def test_index_matches_reader_and_feeds_roam_clips(tmp_path):
    _fake_tree(tmp_path)
    seqs = load_training_set('imagenet_vid', tmp_path)
    index = load_training_index('imagenet_vid', tmp_path, tmp_path / 'cache')
    assert len(index) == len(seqs)
    for s, seq in enumerate(seqs):
        assert index.name(s) == seq.name
        np.testing.assert_array_equal(index.boxes(s), seq.boxes)
        np.testing.assert_array_equal(index.visible(s), seq.visible)
        assert index.frame_path(s, len(seq) - 1) == seq.frames[-1]
    # ROAM clips from the index: only tracks with >= 31 visible frames (a0: 36, a3: 33)
    from configs.roam import get_config
    from roam.clips import ClipSampler, clip_spec
    config = get_config('tiny')
    sampler = ClipSampler([index], (1.0,), config, seed=0)
    assert sorted(sampler.eligible[0].tolist()) == [0, 1]
    clip = sampler.sample(5)
    for k, spec in clip_spec(config).items():
        assert clip[k].shape == spec.shape and clip[k].dtype == spec.dtype, k
    again = sampler.sample(5)
    for k in clip:
        np.testing.assert_array_equal(clip[k], again[k])
