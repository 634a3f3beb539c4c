"""Training-set readers on small fake trees in each dataset's layout."""
import json
from pathlib import Path

import numpy as np
import pytest

from tracking.data.datasets import TRAINING_SETS, load_training_set

from helpers import FAKE_H, FAKE_W, check_frame, write_jpeg, write_text

W, H = FAKE_W, FAKE_H


def make_got10k_train(root, count=3):
    names = [f'GOT-10k_Train_{k:06d}' for k in range(1, count + 1)]
    for k, name in enumerate(names):
        seq_dir = root / 'train' / name
        for i in range(1, 4):
            write_jpeg(seq_dir / f'{i:08d}.jpg', 20 * i + k)
        # frame 2 is absent with a zero-size box: marked not visible, never an error
        write_text(seq_dir / 'groundtruth.txt', [f'{k},1,5,6', '0,0,0,0', f'{k},2,5,6'])
        write_text(seq_dir / 'absence.label', [0, 1, 0])
        write_text(seq_dir / 'cover.label', [8, 0, 5])
        write_text(seq_dir / 'meta_info.ini', ['[METAINFO]', 'resolution: (640, 480)'])
    write_text(root / 'train' / 'list.txt', names)
    return names


def test_got10k_train(tmp_path):
    names = make_got10k_train(tmp_path)
    seqs = load_training_set('got10k_train', tmp_path)
    assert [s.name for s in seqs] == names
    seq = seqs[1]
    np.testing.assert_array_equal(seq.boxes[2], [1, 2, 5, 6])
    np.testing.assert_array_equal(seq.visible, [True, False, True])
    assert seq.extra['image_size'] == (640, 480)
    check_frame(seq, 2, level=61)


def test_got10k_vot_train_split_file(tmp_path):
    names = make_got10k_train(tmp_path)
    with pytest.raises(FileNotFoundError, match='got10k_vot_train_split.txt'):
        load_training_set('got10k_vot_train', tmp_path)
    write_text(tmp_path / 'got10k_vot_train_split.txt', [names[2], names[0]])
    assert [s.name for s in load_training_set('got10k_vot_train', tmp_path)] == [names[2],
                                                                                 names[0]]
    write_text(tmp_path / 'got10k_vot_train_split.txt', ['1', '2'])  # 0-based indices
    assert [s.name for s in load_training_set('got10k_vot_train', tmp_path)] == names[1:]
    write_text(tmp_path / 'got10k_vot_train_split.txt', ['7'])
    with pytest.raises(ValueError, match=r'line 1: index 7 out of range'):
        load_training_set('got10k_vot_train', tmp_path)


def make_lasot_seq(root, name, count=3):
    seq_dir = root / name.rsplit('-', 1)[0] / name
    write_text(seq_dir / 'groundtruth.txt', ['1,2,3,4'] + ['2,2,3,4'] * (count - 1))
    (seq_dir / 'full_occlusion.txt').write_text(','.join(['0'] * (count - 1) + ['1']))
    (seq_dir / 'out_of_view.txt').write_text(','.join(['0'] * count))
    for i in range(1, count + 1):
        write_jpeg(seq_dir / 'img' / f'{i:08d}.jpg', 50 * i)


def test_lasot_train(tmp_path):
    make_lasot_seq(tmp_path, 'airplane-1')   # in the official test list
    make_lasot_seq(tmp_path, 'airplane-2')
    make_lasot_seq(tmp_path, 'zebra-3')
    seqs = load_training_set('lasot', tmp_path)
    assert [s.name for s in seqs] == ['airplane-2', 'zebra-3']
    np.testing.assert_array_equal(seqs[0].visible, [True, True, False])
    check_frame(seqs[0], 1, level=100)
    write_text(tmp_path / 'training_set.txt', ['zebra-3'])
    assert [s.name for s in load_training_set('lasot', tmp_path)] == ['zebra-3']


def test_trackingnet_train(tmp_path):
    with pytest.raises(FileNotFoundError, match='TRAIN_0'):
        load_training_set('trackingnet', tmp_path)
    for chunk, name in (('TRAIN_0', 'a_0'), ('TRAIN_3', 'b_1')):
        for i in range(4):
            write_jpeg(tmp_path / chunk / 'frames' / name / f'{i}.jpg', 30 * i)
        write_text(tmp_path / chunk / 'anno' / f'{name}.txt',
                   ['1,1,4,4', '2,2,4,4', '3,3,0,4', '4,4,4,4'])
    seqs = load_training_set('trackingnet', tmp_path)
    assert [(s.name, s.extra['chunk']) for s in seqs] == [('a_0', 'TRAIN_0'), ('b_1', 'TRAIN_3')]
    assert len(seqs[1]) == 4 and seqs[1].frames[0].endswith(str(Path('b_1') / '0.jpg'))
    np.testing.assert_array_equal(seqs[1].visible, [True, True, False, True])
    np.testing.assert_array_equal(seqs[1].boxes[3], [4, 4, 4, 4])
    check_frame(seqs[1], 3, level=90)


def test_coco(tmp_path):
    write_jpeg(tmp_path / 'train2017' / '000000000001.jpg', 10)
    write_jpeg(tmp_path / 'train2017' / '000000000002.jpg', 200)
    data = {
        'images': [{'id': 1, 'file_name': '000000000001.jpg', 'width': W, 'height': H},
                   {'id': 2, 'file_name': '000000000002.jpg', 'width': W, 'height': H}],
        'annotations': [
            {'id': 11, 'image_id': 1, 'bbox': [1.5, 2.0, 10.0, 8.0], 'iscrowd': 0,
             'category_id': 3},
            {'id': 12, 'image_id': 1, 'bbox': [0, 0, 30, 20], 'iscrowd': 1, 'category_id': 1},
            {'id': 13, 'image_id': 2, 'bbox': [4, 4, 0, 3], 'iscrowd': 0, 'category_id': 5},
        ],
        'categories': [],
    }
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'instances_train2017.json').write_text(json.dumps(data))
    seqs = load_training_set('coco', tmp_path)
    assert [s.name for s in seqs] == ['coco_11', 'coco_13']
    assert len(seqs[0]) == 1
    np.testing.assert_array_equal(seqs[0].boxes, [[1.5, 2.0, 10.0, 8.0]])
    np.testing.assert_array_equal([s.visible[0] for s in seqs], [True, False])
    assert seqs[0].extra['category_id'] == 3 and seqs[0].extra['image_size'] == (W, H)
    check_frame(seqs[0], 0, level=10)
    check_frame(seqs[1], 0, level=200)


def test_unknown_and_missing(tmp_path):
    with pytest.raises(ValueError) as err:
        load_training_set('imagenet_det', tmp_path)   # not a training set here
    for name in ('got10k_train', 'got10k_vot_train', 'lasot', 'trackingnet', 'coco', 'imagenet_vid'):
        assert name in str(err.value) and name in TRAINING_SETS
    with pytest.raises(FileNotFoundError, match='instances_train2017.json'):
        load_training_set('coco', tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'none')):
        load_training_set('lasot', tmp_path / 'none')
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'train')):
        load_training_set('got10k_train', tmp_path)
