"""Readers for LaSOT_ext (tracking/data/benchmarks/lasot_ext.py) and TNL2K (tnl2k.py), on small
fake trees in the releases' layouts, plus their registry names and result folders."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tracking.data.benchmarks import (BENCHMARKS, LASOT_EXT_SEQUENCES, canonical_benchmark,
                                      load_benchmark)
from tracking.data.benchmarks.tnl2k import read_tnl2k_sequence
from tracking.eval import results as results_lib
from tracking.eval import runner
from tracking.tracker import StaticTracker


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((12, 16, 3), value, np.uint8))


def _write_lasot_ext_sequence(root: Path, name: str, boxes, occlusion, out_of_view) -> Path:
    seq = root / name.rsplit('-', 1)[0] / name
    for i in range(len(boxes)):
        _image(seq / 'img' / f'{i + 1:08d}.jpg', 10 * i)
    (seq / 'groundtruth.txt').write_text(''.join(','.join(str(v) for v in b) + '\n'
                                                 for b in boxes))
    (seq / 'full_occlusion.txt').write_text(','.join(map(str, occlusion)) + '\n')
    (seq / 'out_of_view.txt').write_text(','.join(map(str, out_of_view)) + '\n')
    return seq


BOXES = [[1, 2, 5, 6], [2, 2, 5, 6], [0, 0, 0, 0], [3, 3, 5, 6]]


@pytest.fixture
def lasot_ext_root(tmp_path):
    root = tmp_path / 'LaSOT_extension_subset'
    _write_lasot_ext_sequence(root, 'atv-1', BOXES, [0, 0, 1, 0], [0, 0, 0, 0])
    _write_lasot_ext_sequence(root, 'wingsuit-10', BOXES[:2], [0, 0], [0, 1])
    return root


def test_lasot_ext_names_and_aliases():
    assert len(LASOT_EXT_SEQUENCES) == 150
    assert len({n.rsplit('-', 1)[0] for n in LASOT_EXT_SEQUENCES}) == 15
    assert LASOT_EXT_SEQUENCES[:2] == ('atv-1', 'atv-2') and LASOT_EXT_SEQUENCES[-1] == 'wingsuit-10'
    assert 'lasot_ext' in BENCHMARKS and 'tnl2k' in BENCHMARKS
    for alias in ('lasot_ext', 'lasotext', 'lasot-ext', 'LaSOT_ext', 'LaSOT-extension'):
        assert canonical_benchmark(alias) == 'lasot_ext'
    assert canonical_benchmark('TNL2K') == 'tnl2k'
    assert runner.result_folder('lasot-ext') == 'LaSOT_extension_subset'
    assert runner.result_folder('tnl2k') == 'TNL2K'
    assert results_lib.layout('lasotext') == 'ope' and results_lib.layout('tnl2k') == 'ope'


def test_lasot_ext_reads_layout(lasot_ext_root):
    sequences = load_benchmark('lasot-ext', lasot_ext_root, split='all')
    assert [s.name for s in sequences] == ['atv-1', 'wingsuit-10']
    atv = sequences[0]
    np.testing.assert_array_equal(atv.boxes, BOXES)
    assert atv.visible.tolist() == [True, True, False, True]  # full_occlusion in frame 2
    assert sequences[1].visible.tolist() == [True, False]      # out_of_view in frame 1
    assert atv.frames[0].endswith('atv/atv-1/img/00000001.jpg')
    assert atv.frame(3).shape == (12, 16, 3) and atv.frame(3)[0, 0, 0] == 30


def test_lasot_ext_default_split_is_the_150_list(lasot_ext_root):
    [atv] = load_benchmark('lasot_ext', lasot_ext_root, sequences=['atv-1'])
    assert len(atv) == 4
    with pytest.raises(FileNotFoundError, match='badminton-3'):
        load_benchmark('lasot_ext', lasot_ext_root, sequences=['badminton-3'])
    with pytest.raises(KeyError, match='atv-11'):
        load_benchmark('lasot_ext', lasot_ext_root, sequences=['atv-11'])
    with pytest.raises(ValueError, match="unknown split 'train'"):
        load_benchmark('lasot_ext', lasot_ext_root, split='train')


def test_lasot_ext_bad_ground_truth_names_file_and_line(lasot_ext_root):
    gt = lasot_ext_root / 'atv' / 'atv-1' / 'groundtruth.txt'
    gt.write_text('1,2,5,6\n2,2,5\n0,0,0,0\n3,3,5,6\n')
    with pytest.raises(ValueError, match=r'groundtruth.txt, line 2: expected 4 values'):
        load_benchmark('lasot_ext', lasot_ext_root, sequences=['atv-1'])


def test_lasot_ext_runs_and_scores_under_its_result_folder(lasot_ext_root, tmp_path):
    sequences = load_benchmark('lasot_ext', lasot_ext_root, split='all')
    out = tmp_path / 'results' / runner.result_folder('lasot_ext')
    per_sequence, summary, failures = runner.evaluate_tracker(
        StaticTracker, sequences, 'lasot_ext', str(out), 'static', progress=False)
    assert failures == []
    assert (out / 'static' / 'atv-1.txt').is_file()
    assert summary['num_sequences'] == 2 and set(per_sequence) == {'atv-1', 'wingsuit-10'}


# --- TNL2K -----------------------------------------------------------------------------------

def _write_tnl2k_sequence(folder: Path, frame_names, boxes, language='the man in red') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(frame_names):
        _image(folder / 'imgs' / name, 10 * i)
    (folder / 'groundtruth.txt').write_text(''.join(','.join(str(v) for v in b) + '\n'
                                                    for b in boxes))
    if language is not None:
        (folder / 'language.txt').write_text(language + '\n')
    return folder


@pytest.fixture
def tnl2k_root(tmp_path):
    root = tmp_path / 'TNL2K_test'
    # Uneven numbering and png/jpg mixed, as in the release.
    _write_tnl2k_sequence(root / 'INF_bike', [f'{i}.png' for i in (1, 2, 10, 3)],
                          [[1, 1, 4, 4], [2, 2, 4, 4], [3, 3, 4, 4], [4, 4, 4, 4]])
    _write_tnl2k_sequence(root / 'Cartoon-WenZi-video-02', ['00001.jpg', '00002.jpg'],
                          [[1, 1, 4, 4], [0, 0, 0, 0]], language=None)
    # One level down (a re-packed part folder), a name with the release's odd suffix.
    _write_tnl2k_sequence(root / 'TNL2K_test_subset_p2' / 'BF5_Blade_video_01-Done',
                          ['img0009.jpg', 'img0010.jpg', 'img0011.png'],
                          [[1, 1, 4, 4]] * 3)
    return root


def test_tnl2k_reads_layout(tnl2k_root):
    sequences = load_benchmark('TNL2K', tnl2k_root)
    by_name = {s.name: s for s in sequences}
    assert sorted(by_name) == ['BF5_Blade_video_01-Done', 'Cartoon-WenZi-video-02', 'INF_bike']
    bike = by_name['INF_bike']
    assert [Path(f).name for f in bike.frames] == ['1.png', '2.png', '3.png', '10.png']
    assert bike.frame(3)[0, 0, 0] == 20  # 10.png was written third (value 20): natural order
    assert bike.extra['language'] == 'the man in red'
    assert bike.visible.tolist() == [True] * 4
    wenzi = by_name['Cartoon-WenZi-video-02']
    assert wenzi.visible.tolist() == [True, False]  # a 0,0,0,0 row: target absent
    assert 'language' not in wenzi.extra
    blade = by_name['BF5_Blade_video_01-Done']
    assert [Path(f).suffix for f in blade.frames] == ['.jpg', '.jpg', '.png']
    [only] = load_benchmark('tnl2k', tnl2k_root, sequences=['Cartoon-WenZi-video-02'])
    assert len(only) == 2


def test_tnl2k_errors_name_the_folder_or_file(tnl2k_root, tmp_path):
    bike = tnl2k_root / 'INF_bike'
    (bike / 'imgs' / '11.jpg').write_bytes(b'')  # one frame more than boxes
    with pytest.raises(ValueError, match=r'INF_bike: 5 frames in imgs/ but 4 boxes'):
        read_tnl2k_sequence(bike)
    (bike / 'imgs' / '11.jpg').unlink()
    (bike / 'groundtruth.txt').write_text('1,1,0,4\n2,2,4,4\n3,3,4,4\n4,4,4,4\n')
    with pytest.raises(ValueError, match=r'groundtruth.txt, line 1: first box has zero'):
        read_tnl2k_sequence(bike)
    with pytest.raises(FileNotFoundError, match='imgs'):
        read_tnl2k_sequence(_write_tnl2k_sequence(tmp_path / 'no_frames', [], [[1, 1, 4, 4]]))
    (tmp_path / 'empty_root').mkdir()
    with pytest.raises(FileNotFoundError, match='no sequence folders'):
        load_benchmark('tnl2k', tmp_path / 'empty_root')
    with pytest.raises(FileNotFoundError, match='tnl2k benchmark root not found'):
        load_benchmark('tnl2k', tmp_path / 'missing')
