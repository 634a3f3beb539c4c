"""track.py / python -m tracking.track: a tracker on a video file or a folder of frames.

The videos are written here with cv2.VideoWriter (a white square moving right, 64x64); the
tracker is configs/grm.py:tiny untrained, so each command-line run takes a few seconds.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracking import track
from tracking.eval.results import read_boxes
from tracking.tracker import StaticTracker

REPO = Path(__file__).resolve().parents[1]
NUM_FRAMES = 10
SIZE = 64
INIT = '10,20,16,16'


def _frame(i: int) -> np.ndarray:
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    frame[20:36, 10 + 3 * i:26 + 3 * i] = 255
    return frame


def _write_video(path: Path, num_frames: int = NUM_FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (SIZE, SIZE))
    assert writer.isOpened()
    for i in range(num_frames):
        writer.write(_frame(i))
    writer.release()
    return path


def _write_frames(folder: Path, names) -> Path:
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), _frame(i))
    return folder


def _count_video_frames(path: Path) -> tuple[int, tuple[int, int]]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    count, shape = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, shape = count + 1, frame.shape[:2]
    capture.release()
    return count, shape


def _run(args, cwd=REPO):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_video_file_untrained_tiny(tmp_path):
    video = _write_video(tmp_path / 'square.mp4')
    out = tmp_path / 'out' / 'tracked.mp4'
    result = _run(['track.py', '--config', 'configs/grm.py:tiny', '--input', str(video),
                   '--init', INIT, '--out', str(out)])
    assert result.returncode == 0, result.stderr
    assert 'untrained' in result.stderr  # no --checkpoint: the warning says so
    assert _count_video_frames(out) == (NUM_FRAMES, (SIZE, SIZE))
    boxes = read_boxes(out.with_suffix('.txt'))
    assert boxes.shape == (NUM_FRAMES, 4)
    np.testing.assert_allclose(boxes[0], [10, 20, 16, 16])
    assert np.all(np.isfinite(boxes))


def test_folder_of_frames_module_entry_point(tmp_path):
    # Names that sort wrongly as plain strings (frame10 < frame2), png and jpg mixed.
    names = [f'frame{i + 1}.{"png" if i % 2 else "jpg"}' for i in range(NUM_FRAMES)]
    folder = _write_frames(tmp_path / 'frames', names)
    out, box_file = tmp_path / 'tracked.mp4', tmp_path / 'boxes' / 'result.txt'
    result = _run(['-m', 'tracking.track', '--config', 'configs/grm.py:tiny',
                   '--input', str(folder), '--init', INIT, '--out', str(out),
                   '--boxes', str(box_file)])
    assert result.returncode == 0, result.stderr
    assert _count_video_frames(out) == (NUM_FRAMES, (SIZE, SIZE))
    assert read_boxes(box_file).shape == (NUM_FRAMES, 4)
    assert len(box_file.read_text().splitlines()) == NUM_FRAMES


def test_folder_frames_in_natural_order(tmp_path):
    folder = _write_frames(tmp_path / 'f', ['img10.png', 'img2.png', 'img1.jpg'])
    (folder / 'notes.txt').write_text('not a frame')
    source = track.FrameSource(folder)
    assert [p.name for p in source.files] == ['img1.jpg', 'img2.png', 'img10.png']
    assert source.count == 3 and source.frame_hw == (SIZE, SIZE)


def test_track_video_with_static_tracker_follows_the_source(tmp_path):
    video = _write_video(tmp_path / 'v.avi')
    boxes = track.track_video(StaticTracker(), track.FrameSource(video),
                              track.parse_init_box(INIT), tmp_path / 'o.mp4',
                              show_progress=False)
    assert boxes.shape == (NUM_FRAMES, 4)
    np.testing.assert_array_equal(boxes, np.tile([10.0, 20.0, 16.0, 16.0], (NUM_FRAMES, 1)))
    assert _count_video_frames(tmp_path / 'o.mp4')[0] == NUM_FRAMES


@pytest.mark.parametrize('text, words', [
    ('1,2,3', 'expected 4 numbers'),
    ('1,2,3,4,5', 'expected 4 numbers'),
    ('a,b,c,d', 'expected 4 numbers'),
    ('1,2,0,4', 'positive'),
    ('1,2,5,-4', 'positive'),
    ('1,nan,5,4', 'finite'),
])
def test_bad_init_names_the_value(text, words):
    with pytest.raises(track.TrackInputError, match=words) as info:
        track.parse_init_box(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize('box', ['64,10,5,5', '10,70,5,5', '-10,10,10,5', '0,-9,5,9'])
def test_init_outside_first_frame(box):
    with pytest.raises(track.TrackInputError, match='outside the first frame') as info:
        track.check_box_in_frame(track.parse_init_box(box), (SIZE, SIZE), box)
    assert repr(box) in str(info.value)
    track.check_box_in_frame(track.parse_init_box('60,60,10,10'), (SIZE, SIZE), 'ok')  # overlaps


def test_unreadable_video_and_missing_folder(tmp_path):
    bad = tmp_path / 'broken.mp4'
    bad.write_bytes(b'not a video at all' * 10)
    with pytest.raises(track.TrackInputError, match='cannot open the video') as info:
        track.FrameSource(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(FileNotFoundError, match='not found') as info:
        track.FrameSource(tmp_path / 'no_such_folder')
    assert 'no_such_folder' in str(info.value)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(track.TrackInputError, match='no image files'):
        track.FrameSource(tmp_path / 'empty')


def test_cli_errors_exit_with_one_line(tmp_path):
    video = _write_video(tmp_path / 'v.mp4', num_frames=2)
    for init, expected in (('5,5,0,5', "--init '5,5,0,5'"),
                           ('100,5,5,5', 'outside the first frame')):
        result = _run(['track.py', '--config', 'configs/grm.py:tiny', '--input', str(video),
                       '--init', init, '--out', str(tmp_path / 'o.mp4')])
        assert result.returncode == 2
        assert expected in result.stderr and 'Traceback' not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = _run(['track.py', '--config', 'configs/grm.py:tiny', '--input',
                   str(tmp_path / 'missing'), '--init', INIT, '--out', str(tmp_path / 'o.mp4')])
    assert result.returncode == 2 and 'missing' in result.stderr
    assert not (tmp_path / 'o.mp4').exists()


def test_checkpoint_of_another_model_is_one_error(tmp_path):
    from tracking.checkpoint import save_variables
    save_variables(str(tmp_path / 'ckpt'), {'params': {'dense': {'kernel': np.zeros((2, 3))}}})
    video = _write_video(tmp_path / 'v.mp4', num_frames=2)
    result = _run(['track.py', '--config', 'configs/grm.py:tiny', '--input', str(video),
                   '--init', INIT, '--out', str(tmp_path / 'o.mp4'),
                   '--checkpoint', str(tmp_path / 'ckpt')])
    assert result.returncode == 2, result.stderr
    assert 'cannot load --checkpoint' in result.stderr and 'ckpt' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'o.mp4').exists()
