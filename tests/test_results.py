"""Result files: layouts, formats, atomic writes, reading foreign files (eval/results.py)."""
import os
import zipfile

import numpy as np
import pytest

from tracking.eval import results

BOXES = np.array([[10.0, 20.0, 30.0, 40.0],
                  [11.123456, 21.5, 29.25, 39.987654],
                  [12.0, 22.0, 28.0, 38.0]])


@pytest.mark.parametrize('benchmark', ['otb', 'uav123', 'nfs', 'lasot', 'synthetic'])
def test_ope_round_trip(tmp_path, benchmark):
    path = results.write_sequence(tmp_path, benchmark, 'trk', 'Seq1', BOXES)
    assert path == tmp_path / 'trk' / 'Seq1.txt'
    lines = path.read_text().splitlines()
    assert lines[0] == '10.0000,20.0000,30.0000,40.0000'
    assert len(lines) == 3
    back = results.read_sequence(tmp_path / 'trk', benchmark, 'Seq1')
    np.testing.assert_allclose(back, BOXES, atol=5e-5)
    assert back.dtype == np.float64


def test_got10k_round_trip_with_times(tmp_path):
    times = np.array([0.0, 0.012345678, 0.02])
    path = results.write_sequence(tmp_path, 'GOT-10k', 'trk', 'GOT-10k_Test_000001', BOXES,
                                  times)
    seq_dir = tmp_path / 'trk' / 'GOT-10k_Test_000001'
    assert path == seq_dir / 'GOT-10k_Test_000001_001.txt'
    assert path.read_text().splitlines()[1] == '11.123,21.500,29.250,39.988'
    time_file = seq_dir / 'GOT-10k_Test_000001_time.txt'
    assert time_file.read_text().splitlines() == ['0.00000000', '0.01234568', '0.02000000']
    np.testing.assert_allclose(results.read_times(path), times, atol=1e-8)
    back = results.read_sequence(tmp_path, 'got10k', 'GOT-10k_Test_000001', tracker_name='trk')
    np.testing.assert_allclose(back, BOXES, atol=5e-4)


def test_got10k_without_times_writes_zeros(tmp_path):
    path = results.write_sequence(tmp_path, 'got10k', 'trk', 's', BOXES)
    np.testing.assert_array_equal(results.read_times(path), np.zeros(3))
    with pytest.raises(ValueError, match='times'):
        results.write_sequence(tmp_path, 'got10k', 'trk', 's', BOXES, times=[0.1])


def test_trackingnet_round_trip_and_flat_zip(tmp_path):
    results.write_sequence(tmp_path, 'trackingnet', 'trk', 'a', BOXES)
    results.write_sequence(tmp_path, 'trackingnet', 'trk', 'b', BOXES[:2])
    path = tmp_path / 'trk' / 'a.txt'
    assert path.read_text().splitlines()[1] == '11.12,21.50,29.25,39.99'
    zip_path = results.zip_trackingnet(tmp_path, 'trk')
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == ['a.txt', 'b.txt']
        assert archive.read('a.txt').decode() == path.read_text()
    back = results.read_sequence(zip_path.parent / 'trk' / 'b.txt', 'trackingnet', 'b')
    np.testing.assert_allclose(back, BOXES[:2], atol=5e-3)


def test_got10k_zip_keeps_sequence_folders(tmp_path):
    results.write_sequence(tmp_path, 'got10k', 'trk', 's1', BOXES)
    zip_path = results.zip_results(tmp_path, 'got10k', 'trk', tmp_path / 'up.zip')
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == ['s1/s1_001.txt', 's1/s1_time.txt']


def test_is_done(tmp_path):
    assert not results.is_done(tmp_path, 'otb', 'trk', 'Seq1', 3)
    path = results.write_sequence(tmp_path, 'otb', 'trk', 'Seq1', BOXES)
    assert results.is_done(tmp_path, 'otb', 'trk', 'Seq1', 3)
    assert not results.is_done(tmp_path, 'otb', 'trk', 'Seq1', 4)
    path.write_text(''.join(path.read_text().splitlines(keepends=True)[:2]))  # truncated
    assert not results.is_done(tmp_path, 'otb', 'trk', 'Seq1', 3)


def test_write_is_atomic(tmp_path, monkeypatch):
    results.write_sequence(tmp_path, 'otb', 'trk', 'Seq1', BOXES)
    before = (tmp_path / 'trk' / 'Seq1.txt').read_text()

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(results.os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        results.write_sequence(tmp_path, 'otb', 'trk', 'Seq1', BOXES[:1])
    with pytest.raises(KeyboardInterrupt):
        results.write_sequence(tmp_path, 'otb', 'trk', 'Seq2', BOXES)
    assert (tmp_path / 'trk' / 'Seq1.txt').read_text() == before   # old file intact
    assert sorted(os.listdir(tmp_path / 'trk')) == ['Seq1.txt']     # no leftovers


@pytest.mark.parametrize('text', ['1,2,3,4\n5,6,7,8\n', '1\t2\t3\t4\n5\t6\t7\t8',
                                  '1 2  3 4\n5 6 7 8\n\n\n', '1, 2, 3, 4\r\n5 ,6,7 ,8\r\n',
                                  '\ufeff1,2,3,4\n5,6,7,8\n'])
def test_reads_foreign_separators(tmp_path, text):
    path = tmp_path / 'x.txt'
    path.write_text(text, newline='')
    np.testing.assert_array_equal(results.read_boxes(path), [[1, 2, 3, 4], [5, 6, 7, 8]])


def test_reads_nan(tmp_path):
    path = tmp_path / 'x.txt'
    path.write_text('1,2,3,4\nnan,nan,nan,nan\n')
    assert np.isnan(results.read_boxes(path)[1]).all()


@pytest.mark.parametrize('bad_line', ['1,2,3', 'a,b,c,d', '1,,2,3', '', '1,2,3,4,5'])
def test_malformed_file_names_file_and_line(tmp_path, bad_line):
    path = tmp_path / 'bad_seq.txt'
    path.write_text(f'1,2,3,4\n5,6,7,8\n{bad_line}\n9,9,9,9\n')
    with pytest.raises(ValueError) as info:
        results.read_boxes(path)
    assert 'bad_seq.txt' in str(info.value) and 'line 3' in str(info.value)


def test_empty_file_raises(tmp_path):
    path = tmp_path / 'empty.txt'
    path.write_text('\n')
    with pytest.raises(ValueError, match='empty.txt'):
        results.read_boxes(path)


def test_find_result_file_both_layouts(tmp_path):
    flat = tmp_path / 'flat'
    flat.mkdir()
    (flat / 'Basketball.txt').write_text('1,2,3,4\n')
    nested = tmp_path / 'nested' / 'GOT-10k_Val_000001'
    nested.mkdir(parents=True)
    (nested / 'GOT-10k_Val_000001_001.txt').write_text('1,2,3,4\n')
    assert results.find_result_file(flat, 'otb', 'Basketball') == flat / 'Basketball.txt'
    assert results.find_result_file(flat, 'otb', 'Car4') is None
    assert (results.find_result_file(tmp_path / 'nested', 'got10k', 'GOT-10k_Val_000001')
            == nested / 'GOT-10k_Val_000001_001.txt')
    # A GOT-10k layout is also found when evaluated as an OPE benchmark, and vice versa.
    assert results.find_result_file(tmp_path / 'nested', 'lasot', 'GOT-10k_Val_000001')
    assert results.find_result_file(flat, 'got10k', 'Basketball') == flat / 'Basketball.txt'
    with pytest.raises(FileNotFoundError, match='Car4'):
        results.read_sequence(flat, 'otb', 'Car4')


def test_unknown_benchmark_raises(tmp_path):
    with pytest.raises(ValueError, match='vot'):
        results.result_path(tmp_path, 'vot2018', 'trk', 'bag')


def test_reads_real_otb_groundtruth_and_scores_itself(require_shared):
    from pathlib import Path
    from tracking.eval import metrics
    gt_file = (Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'sequences'
               / 'otb' / 'Crossing' / 'groundtruth_rect.txt')
    require_shared(gt_file, what='OTB ground-truth reader')
    gt = results.read_boxes(gt_file)   # tab-separated OTB file
    assert gt.shape == (120, 4)
    np.testing.assert_array_equal(gt[0], [205, 151, 17, 50])
    r = metrics.ope_sequence(gt, gt)
    assert r['auc'] == pytest.approx(20 / 21) and r['precision'] == 1.0
