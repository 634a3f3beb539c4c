"""Benchmark readers on small fake trees in each layout, plus the real shared sequences."""
from pathlib import Path

import numpy as np
import pytest

from tracking.data.benchmarks import (BENCHMARKS, LASOT_TEST_SEQUENCES, UAV123_SPLIT_RANGES,
                                      load_benchmark)
from tracking.images import FrameError

from helpers import FAKE_H, FAKE_W, check_frame, write_jpeg, write_text

from helpers import SHARED
REAL = SHARED / 'data' / 'sequences'
W, H = FAKE_W, FAKE_H





# ------------------------------------------------------------------------------------- OTB

def make_otb(root):
    for i in range(1, 4):
        write_jpeg(root / 'Tab' / 'img' / f'{i:04d}.jpg', 40 * i)
    write_text(root / 'Tab' / 'groundtruth_rect.txt', ['1\t2\t3\t4', '5\t6\t7\t8', '9\t10\t11\t12'])
    for i in range(1, 3):
        write_jpeg(root / 'Comma' / 'img' / f'{i:04d}.jpg')
    write_text(root / 'Comma' / 'groundtruth_rect.txt', ['1,2,3,4', '2, 3, 4, 5'])
    for i in range(1, 3):
        write_jpeg(root / 'Jogging' / 'img' / f'{i:04d}.jpg')
    write_text(root / 'Jogging' / 'groundtruth_rect.1.txt', ['1 1 5 5', '2 2 5 5'])
    write_text(root / 'Jogging' / 'groundtruth_rect.2.txt', ['10 10 6 6', '11 11 6 6'])
    for i in range(1, 3):
        write_jpeg(root / 'Human4' / 'img' / f'{i:04d}.jpg')
    (root / 'Human4' / 'groundtruth_rect.1.txt').write_text('')
    write_text(root / 'Human4' / 'groundtruth_rect.2.txt', ['3,3,4,4', '3,4,4,4'])
    for i in range(1, 82):  # Football1: 81 images, 74 GT lines (official range 1..74)
        write_jpeg(root / 'Football1' / 'img' / f'{i:04d}.jpg', 2 * i)
    write_text(root / 'Football1' / 'groundtruth_rect.txt', [f'{i},1,10,10' for i in range(74)])
    for i in range(1, 360):  # BlurCar3: GT covers frames 3..359
        write_jpeg(root / 'BlurCar3' / 'img' / f'{i:04d}.jpg')
    write_text(root / 'BlurCar3' / 'groundtruth_rect.txt', [f'{i},1,10,10' for i in range(357)])


def test_otb_layout(tmp_path):
    make_otb(tmp_path)
    seqs = load_benchmark('otb', tmp_path)
    names = [s.name for s in seqs]
    assert names == ['BlurCar3', 'Comma', 'Football1', 'Human4-2', 'Jogging-1', 'Jogging-2',
                     'Tab']
    by = {s.name: s for s in seqs}
    np.testing.assert_array_equal(by['Tab'].boxes, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    assert by['Tab'].boxes.dtype == np.float64 and by['Tab'].visible is None
    np.testing.assert_array_equal(by['Comma'].boxes[1], [2, 3, 4, 5])
    np.testing.assert_array_equal(by['Jogging-2'].boxes[0], [10, 10, 6, 6])
    np.testing.assert_array_equal(by['Human4-2'].boxes[1], [3, 4, 4, 4])
    assert len(by['Football1']) == 74 and by['Football1'].frames[-1].endswith('0074.jpg')
    assert len(by['BlurCar3']) == 357
    assert by['BlurCar3'].frames[0].endswith('0003.jpg')
    assert by['BlurCar3'].frames[-1].endswith('0359.jpg')
    for i in range(3):
        check_frame(by['Tab'], i, level=40 * (i + 1))
    check_frame(by['Football1'], 73, level=2 * 74)


def test_otb_select_and_single_folder(tmp_path):
    make_otb(tmp_path)
    seqs = load_benchmark('OTB100', tmp_path, sequences=['Jogging-2', 'Tab'])
    assert [s.name for s in seqs] == ['Jogging-2', 'Tab']
    single = load_benchmark('otb', tmp_path / 'Tab')
    assert [s.name for s in single] == ['Tab'] and len(single[0]) == 3
    with pytest.raises(KeyError, match='Nope'):
        load_benchmark('otb', tmp_path, sequences=['Nope'])


def test_otb_fewer_lines_than_frames(tmp_path):
    for i in range(1, 5):
        write_jpeg(tmp_path / 'Short' / 'img' / f'{i:04d}.jpg')
    gt = tmp_path / 'Short' / 'groundtruth_rect.txt'
    write_text(gt, ['1,1,5,5'] * 3)
    with pytest.raises(ValueError) as err:
        load_benchmark('otb', tmp_path)
    message = str(err.value)
    assert str(gt) in message and '3 ground-truth lines' in message and '4 frames' in message
    assert 'fewer lines than frames' in message


def test_otb_bad_ground_truth(tmp_path):
    for i in range(1, 4):
        write_jpeg(tmp_path / 'Seq' / 'img' / f'{i:04d}.jpg')
    gt = tmp_path / 'Seq' / 'groundtruth_rect.txt'
    write_text(gt, ['1,1,5,5', '1,1,5,5', 'NaN,NaN,NaN,NaN'])
    with pytest.raises(ValueError, match=r'groundtruth_rect\.txt, line 3: NaN'):
        load_benchmark('otb', tmp_path)
    write_text(gt, ['1,1,0,5', '1,1,5,5', '1,1,5,5'])
    with pytest.raises(ValueError, match=r'line 1: first box has zero or negative size'):
        load_benchmark('otb', tmp_path)
    write_text(gt, ['1,1,-2,5', '1,1,5,5', '1,1,5,5'])
    with pytest.raises(ValueError, match=str(gt).replace('.', r'\.') + ', line 1'):
        load_benchmark('otb', tmp_path)
    write_text(gt, ['1,1,5,5', '1,1,5', '1,1,5,5'])
    with pytest.raises(ValueError, match=r'line 2: expected 4 values'):
        load_benchmark('otb', tmp_path)
    write_text(gt, ['1,1,5,5', '1,x,5,5', '1,1,5,5'])
    with pytest.raises(ValueError, match=r'line 2: not a list of numbers'):
        load_benchmark('otb', tmp_path)


def test_missing_and_corrupt_frames(tmp_path):
    for i in range(1, 4):
        write_jpeg(tmp_path / 'Seq' / 'img' / f'{i:04d}.jpg')
    write_text(tmp_path / 'Seq' / 'groundtruth_rect.txt', ['1,1,5,5'] * 3)
    seq = load_benchmark('otb', tmp_path)[0]
    (tmp_path / 'Seq' / 'img' / '0002.jpg').unlink()
    with pytest.raises(FrameError, match='0002.jpg'):
        seq.frame(1)
    (tmp_path / 'Seq' / 'img' / '0003.jpg').write_bytes(b'not a jpeg at all' * 10)
    with pytest.raises(FrameError, match=r'corrupt.*0003\.jpg'):
        seq.frame(2)
    check_frame(seq, 0)


def test_unknown_benchmark_and_missing_root(tmp_path):
    with pytest.raises(ValueError) as err:
        load_benchmark('imagenet', tmp_path)
    for name in ('otb', 'lasot', 'got10k', 'trackingnet', 'uav123', 'nfs', 'vot'):
        assert name in str(err.value) and name in BENCHMARKS
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'absent')):
        load_benchmark('otb', tmp_path / 'absent')


@pytest.mark.shared(REAL / 'otb' / 'Crossing', what='OTB reader on the shared Crossing')
def test_real_otb_crossing():
    gt_first = (REAL / 'otb' / 'Crossing' / 'groundtruth_rect.txt').read_text().split('\n')[0]
    expected = [float(v) for v in gt_first.replace(',', ' ').split()]
    for root in (REAL / 'otb', REAL / 'otb' / 'Crossing'):
        seq = load_benchmark('otb', root, sequences=['Crossing'])[0]
        assert len(seq) == 120
        np.testing.assert_array_equal(seq.boxes[0], expected)
        np.testing.assert_array_equal(seq.boxes[0], [205, 151, 17, 50])
        frame = seq.frame(119)
        assert frame.shape == (240, 360, 3) and frame.dtype == np.uint8


@pytest.mark.shared(REAL / 'vot' / 'bag', what='VOT reader on the shared bag')
def test_real_vot_bag():
    seq = load_benchmark('vot', REAL / 'vot' / 'bag')[0]
    assert seq.name == 'bag' and len(seq) == 196
    polygons = seq.extra['polygons']
    assert polygons.shape == (196, 8)
    np.testing.assert_allclose(polygons[0], [334.02, 128.36, 438.19, 188.78, 396.39, 260.83,
                                             292.23, 200.41], rtol=1e-6)
    # min/max of the corners: x 292.23..438.19, y 128.36..260.83
    np.testing.assert_allclose(seq.boxes[0], [292.23, 128.36, 145.96, 132.47], rtol=1e-5)
    assert seq.frame(0).shape == (360, 480, 3)
    assert len(load_benchmark('vot2018', REAL / 'vot')) == 1


# ------------------------------------------------------------------------------------- LaSOT

def make_lasot_seq(root, name, boxes, occlusion, out_of_view, frames=True):
    seq_dir = root / name.rsplit('-', 1)[0] / name
    write_text(seq_dir / 'groundtruth.txt', boxes)
    (seq_dir / 'full_occlusion.txt').write_text(','.join(map(str, occlusion)))
    (seq_dir / 'out_of_view.txt').write_text(','.join(map(str, out_of_view)))
    if frames:
        for i in range(1, len(boxes) + 1):
            write_jpeg(seq_dir / 'img' / f'{i:08d}.jpg', 30 * i)
    return seq_dir


def test_lasot(tmp_path):
    make_lasot_seq(tmp_path, 'airplane-1', ['1,2,3,4', '0,0,0,0', 'NaN,NaN,NaN,NaN', '4,4,4,4'],
                   [0, 1, 0, 0], [0, 0, 1, 0])
    make_lasot_seq(tmp_path, 'cat-3', ['5,5,5,5', '6,6,6,6'], [0, 0], [0, 0])
    write_text(tmp_path / 'testing_set.txt', ['airplane-1'])
    seqs = load_benchmark('lasot', tmp_path)
    assert [s.name for s in seqs] == ['airplane-1']
    seq = seqs[0]
    np.testing.assert_array_equal(seq.visible, [True, False, False, True])
    assert np.isnan(seq.boxes[2]).all()
    assert seq.frames[3].endswith(str(Path('airplane') / 'airplane-1' / 'img' / '00000004.jpg'))
    check_frame(seq, 3, level=120)
    assert [s.name for s in load_benchmark('lasot', tmp_path, split='all')] == ['airplane-1',
                                                                              'cat-3']


def test_lasot_errors_and_test_list(tmp_path):
    seq_dir = make_lasot_seq(tmp_path, 'cat-3', ['5,5,5,5', 'NaN,NaN,NaN,NaN'], [0, 0], [0, 0],
                             frames=False)
    with pytest.raises(ValueError, match=r'groundtruth\.txt, line 2: NaN'):
        load_benchmark('lasot', tmp_path, split='all')
    (seq_dir / 'out_of_view.txt').unlink()
    with pytest.raises(FileNotFoundError, match='out_of_view.txt'):
        load_benchmark('lasot', tmp_path, split='all')
    # built-in list (no testing_set.txt): a listed but absent sequence names its folder
    with pytest.raises(FileNotFoundError, match='airplane-1'):
        load_benchmark('lasot', tmp_path, sequences=['airplane-1'])
    assert len(LASOT_TEST_SEQUENCES) == 280 == len(set(LASOT_TEST_SEQUENCES))
    categories = {n.rsplit('-', 1)[0] for n in LASOT_TEST_SEQUENCES}
    assert len(categories) == 70
    assert LASOT_TEST_SEQUENCES[:3] == ('airplane-1', 'airplane-9', 'airplane-13')
    assert LASOT_TEST_SEQUENCES[-1] == 'volleyball-19'


# ------------------------------------------------------------------------------------- GOT-10k

def test_got10k_val_and_test(tmp_path):
    val = tmp_path / 'val' / 'GOT-10k_Val_000001'
    for i in range(1, 5):
        write_jpeg(val / f'{i:08d}.jpg', 50 * i)
    write_text(val / 'groundtruth.txt', ['1,2,3,4', '2,2,3,4', '3,2,3,4', '4,2,3,4'])
    write_text(val / 'absence.label', [0, 1, 0, 0])
    write_text(val / 'cover.label', [8, 0, 3, 0])  # frame 3: present but fully covered
    write_text(val / 'meta_info.ini', ['[METAINFO]', 'url: https://x', 'anno_fps: 10Hz',
                                       'object_class: cat', 'resolution: (1280, 720)'])
    write_text(tmp_path / 'val' / 'list.txt', ['GOT-10k_Val_000001'])
    seq = load_benchmark('got10k', tmp_path)[0]
    assert seq.name == 'GOT-10k_Val_000001' and len(seq) == 4
    np.testing.assert_array_equal(seq.visible, [True, False, True, False])
    np.testing.assert_array_equal(seq.extra['cover'], [8, 0, 3, 0])
    np.testing.assert_array_equal(seq.extra['absence'], [False, True, False, False])
    assert seq.extra['image_size'] == (1280, 720) and seq.extra['meta']['object_class'] == 'cat'
    np.testing.assert_array_equal(seq.boxes[2], [3, 2, 3, 4])
    check_frame(seq, 1, level=100)

    test = tmp_path / 'test' / 'GOT-10k_Test_000001'
    for i in range(1, 6):
        write_jpeg(test / f'{i:08d}.jpg')
    write_text(test / 'groundtruth.txt', ['7,8,9,10'])
    write_text(tmp_path / 'test' / 'list.txt', ['GOT-10k_Test_000001'])
    seq = load_benchmark('got10k', tmp_path, split='test')[0]
    assert len(seq) == 5 and seq.visible is None
    np.testing.assert_array_equal(seq.boxes[0], [7, 8, 9, 10])
    assert np.isnan(seq.boxes[1:]).all()
    check_frame(seq, 4)

    (val / 'cover.label').unlink()
    with pytest.raises(FileNotFoundError, match='cover.label'):
        load_benchmark('got10k', tmp_path, split='val')
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'nothere' / 'val')):
        (tmp_path / 'nothere').mkdir()
        load_benchmark('got10k', tmp_path / 'nothere')


# ------------------------------------------------------------------------------------- TrackingNet

def test_trackingnet_test(tmp_path):
    chunk = tmp_path / 'TEST'
    for i in range(5):
        write_jpeg(chunk / 'frames' / 'abc_0' / f'{i}.jpg', 40 * i)
    write_text(chunk / 'anno' / 'abc_0.txt', ['10,11,12,13'])
    seqs = load_benchmark('trackingnet', tmp_path)
    assert [s.name for s in seqs] == ['abc_0']
    seq = seqs[0]
    assert len(seq) == 5 and seq.frames[0].endswith('0.jpg')
    np.testing.assert_array_equal(seq.boxes[0], [10, 11, 12, 13])
    assert np.isnan(seq.boxes[1:]).all()
    check_frame(seq, 4, level=160)


# ------------------------------------------------------------------------------------- UAV123

def test_uav123(tmp_path):
    anno = tmp_path / 'anno' / 'UAV123'
    write_text(anno / 'car1_s.txt', ['1,2,3,4', 'NaN,NaN,NaN,NaN', '3,3,3,3'])
    for i in range(1, 4):
        write_jpeg(tmp_path / 'data_seq' / 'UAV123' / 'car1_s' / f'{i:06d}.jpg', 60 * i)
    first, last = UAV123_SPLIT_RANGES['bird1_2'][1:]
    assert (first, last) == (775, 1477)
    write_text(anno / 'bird1_2.txt', [f'{i},5,6,7' for i in range(last - first + 1)])
    write_jpeg(tmp_path / 'data_seq' / 'UAV123' / 'bird1' / '000775.jpg', 90)
    seqs = load_benchmark('uav123', tmp_path)
    by = {s.name: s for s in seqs}
    assert sorted(by) == ['bird1_2', 'car1_s']
    np.testing.assert_array_equal(by['car1_s'].visible, [True, False, True])
    check_frame(by['car1_s'], 2, level=180)
    bird = by['bird1_2']
    assert len(bird) == 703 and bird.visible.all()
    assert bird.frames[0].endswith(str(Path('bird1') / '000775.jpg'))
    assert bird.frames[-1].endswith('001477.jpg')
    check_frame(bird, 0, level=90)

    write_text(anno / 'bird1_2.txt', ['1,5,6,7'] * 10)
    with pytest.raises(ValueError, match=r'bird1_2\.txt: 10 lines.*775\.\.1477'):
        load_benchmark('uav123', tmp_path, sequences=['bird1_2'])
    write_text(anno / 'car1_s.txt', ['NaN,NaN,NaN,NaN', '3,3,3,3', '3,3,3,3'])
    with pytest.raises(ValueError, match=r'car1_s\.txt, line 1: first box is not finite'):
        load_benchmark('uav123', tmp_path, sequences=['car1_s'])


# ------------------------------------------------------------------------------------- NfS

def test_nfs_every_eighth_annotation(tmp_path):
    seq_dir = tmp_path / 'ball_1'
    for i in range(1, 4):
        write_jpeg(seq_dir / '30' / 'ball_1' / f'{i:05d}.jpg', 70 * i)
    lines = []
    for k in range(17):  # 240-fps lines 1..17; lines 1, 9, 17 are the 30-fps frames
        lost = 1 if k == 8 else 0
        lines.append(f'1 {k} {2 * k} {k + 10} {2 * k + 20} {k + 1} {lost} 0 0 "ball"')
    write_text(seq_dir / '30' / 'ball_1.txt', lines)
    seq = load_benchmark('nfs', tmp_path)[0]
    assert seq.name == 'ball_1' and len(seq) == 3
    np.testing.assert_array_equal(seq.boxes, [[0, 0, 10, 20], [8, 16, 10, 20], [16, 32, 10, 20]])
    np.testing.assert_array_equal(seq.visible, [True, False, True])
    check_frame(seq, 2, level=210)

    write_text(seq_dir / '30' / 'ball_1.txt', lines[:2])
    with pytest.raises(ValueError, match=r'ball_1\.txt: 1 annotations.*3 frames'):
        load_benchmark('nfs', tmp_path)


# ------------------------------------------------------------------------------------- VOT

def test_vot_list_rects_and_polygons(tmp_path):
    for i in range(1, 3):
        write_jpeg(tmp_path / 'rects' / 'color' / f'{i:08d}.jpg')
        write_jpeg(tmp_path / 'polys' / f'{i:08d}.jpg', 100)
    write_text(tmp_path / 'rects' / 'groundtruth.txt', ['1,2,3,4', '2,3,4,5'])
    write_text(tmp_path / 'polys' / 'groundtruth.txt',
               ['10,0,20,10,10,20,0,10', '1,1,4,5'])  # a rectangle line mixed in
    write_text(tmp_path / 'list.txt', ['polys', 'rects'])
    seqs = load_benchmark('vot', tmp_path)
    assert [s.name for s in seqs] == ['polys', 'rects']
    polys, rects = seqs
    np.testing.assert_array_equal(polys.boxes, [[0, 0, 20, 20], [1, 1, 4, 5]])
    np.testing.assert_array_equal(polys.extra['polygons'][0], [10, 0, 20, 10, 10, 20, 0, 10])
    np.testing.assert_array_equal(polys.extra['polygons'][1], [1, 1, 5, 1, 5, 6, 1, 6])
    np.testing.assert_array_equal(rects.boxes, [[1, 2, 3, 4], [2, 3, 4, 5]])
    np.testing.assert_array_equal(rects.extra['polygons'][0], [1, 2, 4, 2, 4, 6, 1, 6])
    check_frame(polys, 1, level=100)
    check_frame(rects, 0)
    write_text(tmp_path / 'rects' / 'groundtruth.txt', ['1,2,3,4'])
    with pytest.raises(ValueError, match=r'1 ground-truth lines but 2 frames'):
        load_benchmark('vot', tmp_path, sequences=['rects'])
    write_text(tmp_path / 'rects' / 'groundtruth.txt', ['1,2,3,4', '1,2,3,4,5,6'])
    with pytest.raises(ValueError, match=r'groundtruth\.txt, line 2: expected 4 or 8 values'):
        load_benchmark('vot', tmp_path, sequences=['rects'])


# ------------------------------------------------------------------------------------- synthetic

def test_synthetic_dispatch(monkeypatch, tmp_path):
    from tracking.data import synthetic
    from tracking.data.sequence import Sequence
    calls = []

    def fake_load(split, data_dir=None):
        calls.append((split, data_dir))
        return [Sequence(f'syn_{k}', np.zeros((2, H, W, 3), np.uint8), np.ones((2, 4)))
                for k in range(3)]

    monkeypatch.setattr(synthetic, 'load_synthetic', fake_load)
    seqs = load_benchmark('synthetic', tmp_path, sequences=['syn_2', 'syn_0'])
    assert [s.name for s in seqs] == ['syn_2', 'syn_0']
    assert calls == [('test', str(tmp_path))]
