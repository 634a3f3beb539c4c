"""Track one object through a video file or a folder of frames; write an annotated MP4 and boxes.

    python track.py --config configs/grm.py:vitb_256 --checkpoint DIR \
        --input video.mp4 --init 120,80,40,60 --out out.mp4 [--boxes out.txt]
    python -m tracking.track ...   (the same program)

--input: a video file OpenCV can read (mp4, avi, ...) or a folder of image frames (.jpg, .jpeg,
.png, .bmp; taken in natural order, so frame2 comes before frame10). --init x,y,w,h: the target
in the first frame, in pixels (x, y: top-left corner). Without --checkpoint the config's
untrained model is used (with a warning): the boxes then only show that the pipeline runs.

Writes --out (MP4, mp4v codec, the input's frame rate or --fps) with the predicted box drawn on
every frame (and the polygon, for a tracker that returns a VOT polygon of 8 values), and --boxes
(default: --out with .txt): one 'x,y,w,h' line per frame, the first line the --init box (the
format of OTB / pysot result files).
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from tracking.boxes import polygon_to_xywh
from tracking.data.benchmarks.annotations import IMAGE_SUFFIXES, natural_key
from tracking.eval.results import atomic_write_text
from tracking.images import FrameError, load_image
from tracking.logs import progress

logger = logging.getLogger(__name__)

BOX_COLOR_BGR = (0, 255, 0)       # predicted box
POLYGON_COLOR_BGR = (0, 200, 255)  # predicted VOT polygon
DEFAULT_FPS = 30.0


class TrackInputError(ValueError):
    """A bad --input, --init or --out value; the message names it."""


# --- inputs ----------------------------------------------------------------------------------

def parse_init_box(text: str) -> np.ndarray:
    """'x,y,w,h' (commas and/or spaces) -> [4] float64 pixels.

    Raises TrackInputError naming the value if it is not 4 finite numbers or w/h are not > 0.
    """
    fields = [f for f in str(text).replace(',', ' ').split() if f]
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise TrackInputError(f'--init {text!r}: expected 4 numbers x,y,w,h (pixels), e.g. '
                              f'--init 120,80,40,60') from None
    if len(values) != 4:
        raise TrackInputError(f'--init {text!r}: expected 4 numbers x,y,w,h, got {len(values)}')
    if not all(math.isfinite(v) for v in values):
        raise TrackInputError(f'--init {text!r}: values must be finite numbers')
    if values[2] <= 0 or values[3] <= 0:
        raise TrackInputError(f'--init {text!r}: width and height must be positive '
                              f'(w={values[2]:g}, h={values[3]:g})')
    return np.asarray(values, np.float64)


def check_box_in_frame(box: np.ndarray, frame_hw: tuple[int, int], text: str) -> None:
    """Raises TrackInputError naming --init `text` if the box does not overlap the frame
    (height, width) at all."""
    x, y, w, h = (float(v) for v in box)
    height, width = frame_hw
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise TrackInputError(f'--init {text!r}: the box lies outside the first frame '
                              f'({width}x{height} pixels, x in [0, {width}), y in [0, {height}))')


class FrameSource:
    """The frames of a video file or of an image folder, decoded one at a time as RGB.

    Attributes: path, count (number of frames; for a video the container's estimate, used only
    for the progress bar), fps (video: the container's rate if sensible, else DEFAULT_FPS),
    frame_hw (height, width) of the first frame.
    Iterating yields [H, W, 3] uint8 RGB frames. Raises TrackInputError / FileNotFoundError /
    FrameError naming the path (and frame) for a missing, empty or unreadable input.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f'--input not found: {self.path}')
        if self.path.is_dir():
            self.files = sorted((p for p in self.path.iterdir()
                                 if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                                key=lambda p: natural_key(p.name))
            if not self.files:
                raise TrackInputError(f'--input {self.path}: folder has no image files '
                                      f'({", ".join(IMAGE_SUFFIXES)})')
            self.count = len(self.files)
            self.fps = DEFAULT_FPS
            try:
                self.frame_hw = load_image(self.files[0]).shape[:2]
            except FrameError as e:
                raise FrameError(f'--input {self.path}, frame 0: {e}') from e
        else:
            self.files = None
            capture = cv2.VideoCapture(str(self.path))
            try:
                if not capture.isOpened():
                    raise TrackInputError(f'--input {self.path}: cannot open the video (not a '
                                          f'video file, or a codec OpenCV cannot decode)')
                ok, first = capture.read()
                if not ok:
                    raise TrackInputError(f'--input {self.path}: the video has no readable '
                                          f'frame')
                self.frame_hw = first.shape[:2]
                self.count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0) or None
                fps = float(capture.get(cv2.CAP_PROP_FPS))
                self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS
            finally:
                capture.release()

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.files is not None:
            for index, path in enumerate(self.files):
                try:
                    yield load_image(path)
                except FrameError as e:
                    raise FrameError(f'--input {self.path}, frame {index}: {e}') from e
            return
        capture = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()


# --- drawing and writing ---------------------------------------------------------------------

def as_prediction(output, index: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A tracker's output -> (box [4] float64 x,y,w,h, polygon [8] or None).

    Trackers return [4] (x, y, w, h); one that returns a VOT polygon [8] (x1, y1, ..., x4, y4)
    gets it drawn and its bounding box written. Anything else raises ValueError naming the frame.
    """
    values = np.asarray(output, np.float64).reshape(-1)
    if values.shape == (4,):
        return values, None
    if values.shape == (8,):
        return np.asarray(polygon_to_xywh(values), np.float64), values
    raise ValueError(f'frame {index}: the tracker returned shape {np.shape(output)}; expected [4] '
                     f'(x, y, w, h) or a [8] polygon')


def draw_prediction(frame_rgb: np.ndarray, box: np.ndarray, polygon: np.ndarray | None,
                    index: int) -> np.ndarray:
    """[H, W, 3] uint8 BGR copy of the frame with the box (and polygon) and frame number drawn.
    A box with NaN values (a lost target) is not drawn."""
    image = np.ascontiguousarray(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
    thickness = max(1, round(min(image.shape[:2]) / 240))
    if polygon is not None and np.all(np.isfinite(polygon)):
        points = np.round(polygon.reshape(4, 2)).astype(np.int32)
        cv2.polylines(image, [points], True, POLYGON_COLOR_BGR, thickness)
    if np.all(np.isfinite(box)):
        x, y, w, h = box
        cv2.rectangle(image, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))),
                      BOX_COLOR_BGR, thickness)
    cv2.putText(image, f'#{index}', (4, 4 + 12 * thickness), cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * thickness, BOX_COLOR_BGR, thickness)
    return image


def format_boxes(boxes: np.ndarray) -> str:
    """[T, 4] -> 'x,y,w,h' lines, 4 decimals (the OTB / pysot result-file format)."""
    return ''.join(','.join(f'{v:.4f}' for v in row) + '\n' for row in np.asarray(boxes))


def _open_writer(path: Path, fps: float, frame_hw: tuple[int, int]) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frame_hw
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if not writer.isOpened():
        raise TrackInputError(f'--out {path}: OpenCV cannot write an mp4v video there')
    return writer


def track_video(tracker, source: FrameSource, init_box: np.ndarray, out_path,
                init_text: str = '', fps: float | None = None,
                show_progress: bool = True) -> np.ndarray:
    """Runs `tracker` (initialize/track) over `source` from `init_box` on frame 0 and writes the
    annotated MP4 to `out_path`.

    Returns: [T, 4] float64 (x, y, w, h) per frame; row 0 is `init_box`.
    Raises TrackInputError when the box does not overlap frame 0; FrameError naming the frame
    when a frame's size differs from frame 0's (one video needs one size).
    """
    out_path = Path(out_path)
    frames = iter(source)
    first = next(frames, None)
    if first is None:
        raise TrackInputError(f'--input {source.path}: no frames')
    frame_hw = first.shape[:2]
    check_box_in_frame(init_box, frame_hw, init_text or ','.join(f'{v:g}' for v in init_box))
    writer = _open_writer(out_path, fps or source.fps, frame_hw)
    boxes = [np.asarray(init_box, np.float64)]
    bar = progress(total=source.count, desc=source.path.name, unit='frame',
                   enabled=show_progress)
    try:
        tracker.initialize(first, np.asarray(init_box, np.float64).copy())
        writer.write(draw_prediction(first, boxes[0], None, 0))
        bar.update(1)
        for index, frame in enumerate(frames, start=1):
            if frame.shape[:2] != frame_hw:
                raise FrameError(f'--input {source.path}, frame {index}: size '
                                 f'{frame.shape[1]}x{frame.shape[0]} differs from the first '
                                 f'frame\'s {frame_hw[1]}x{frame_hw[0]}')
            box, polygon = as_prediction(tracker.track(frame), index)
            boxes.append(box)
            writer.write(draw_prediction(frame, box, polygon, index))
            bar.update(1)
    finally:
        bar.close()
        writer.release()
    return np.stack(boxes)


# --- command line ----------------------------------------------------------------------------

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Tracker config, e.g. configs/grm.py:vitb_256 (override fields with '
    '--config.a.b=value).')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'Converted-model folder or training workdir; omit for the untrained '
    'model (a warning is printed).')
_INPUT = flags.DEFINE_string('input', None, 'Video file (mp4, avi, ...) or folder of frames.')
_INIT = flags.DEFINE_string('init', None, 'Target box in the first frame: x,y,w,h (pixels).')
_OUT = flags.DEFINE_string('out', None, 'Output video (.mp4).')
_BOXES = flags.DEFINE_string('boxes', None, 'Output box file (default: --out with .txt).')
_FPS = flags.DEFINE_float('fps', None, 'Output frame rate (default: the video\'s, or 30 for a '
                          'folder of frames).')
_SETTINGS = flags.DEFINE_string(
    'settings', 'default', 'Which benchmark\'s test settings to use (config.test.thresholds key, '
    'e.g. otb); default: the config\'s defaults.')
_PROGRESS = flags.DEFINE_bool('progress', True, 'Show a progress bar.')


def _fail(message: str):
    """One `track.py: error: ...` line on stderr, exit status 2 (as train.py / eval.py)."""
    from tracking.config import usage_error
    usage_error('track.py', message)


def boxes_path(out: str, boxes: str | None) -> Path:
    """--boxes, or --out with its suffix replaced by .txt."""
    return Path(boxes) if boxes else Path(out).with_suffix('.txt')


def main(argv) -> None:
    if len(argv) > 1:
        _fail(f'unexpected arguments {argv[1:]}')
    missing = [name for name, flag in (('--config', _CONFIG), ('--input', _INPUT),
                                       ('--init', _INIT), ('--out', _OUT)) if flag.value is None]
    if missing:
        _fail(f'missing {", ".join(missing)}; see --help')
    logging.getLogger('tracking').setLevel(logging.INFO)
    try:  # Input errors first: they need no model.
        init_box = parse_init_box(_INIT.value)
        source = FrameSource(_INPUT.value)
        check_box_in_frame(init_box, source.frame_hw, _INIT.value)
    except (TrackInputError, FileNotFoundError, FrameError) as e:
        _fail(str(e))

    from tracking.tracker import make_tracker
    from tracking.variables import load_variables
    config = _CONFIG.value
    try:
        variables, _ = load_variables(config, _CHECKPOINT.value)
    except (FileNotFoundError, ValueError) as e:
        _fail(f'cannot load --checkpoint: {e}')
    tracker = make_tracker(config, variables, _SETTINGS.value)

    try:
        boxes = track_video(tracker, source, init_box, _OUT.value, init_text=_INIT.value,
                            fps=_FPS.value, show_progress=_PROGRESS.value)
    except (TrackInputError, FrameError) as e:
        _fail(str(e))
    box_file = boxes_path(_OUT.value, _BOXES.value)
    atomic_write_text(box_file, format_boxes(boxes))
    print(f'video: {_OUT.value} ({len(boxes)} frames)')
    print(f'boxes: {box_file}')


def run() -> None:
    """Entry point of track.py and `python -m tracking.track`."""
    from tracking.logs import quiet
    quiet()
    from tracking.config import parse_flags_or_exit
    app.run(main, flags_parser=parse_flags_or_exit)


if __name__ == '__main__':
    run()
