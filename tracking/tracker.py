"""The `Tracker` protocol, the one-pass sequence runner and trackers by name.

A tracker is anything with `initialize(frame, box_xywh)` and `track(frame) -> xywh`; the runner
feeds it the frames of a `Sequence` one at a time (one-pass evaluation, OPE) and records the
boxes and the wall time spent per frame. `make_tracker(config, ...)` builds the tracker of the
package `config.package` names (tracking.plugins); 'static' is the core's baseline.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tracking.boxes import validate_box_xywh
from tracking.data.sequence import Sequence
from tracking.images import FrameError
from tracking.logs import progress as progress_bar

logger = logging.getLogger(__name__)


@runtime_checkable
class Tracker(Protocol):
    """A single-object tracker. `initialize` must reset all per-sequence state."""

    def initialize(self, frame: np.ndarray, box_xywh: np.ndarray) -> None:
        """frame: [H, W, 3] uint8 RGB; box_xywh: [4] (x, y, w, h) in pixels of the target."""

    def track(self, frame: np.ndarray) -> np.ndarray:
        """frame: [H, W, 3] uint8 RGB. Returns [4] (x, y, w, h) in pixels."""


class StaticTracker:
    """Baseline that predicts the initial box in every frame (a lower bound for any tracker)."""

    def __init__(self):
        self._box = None

    def initialize(self, frame: np.ndarray, box_xywh: np.ndarray) -> None:
        self._box = np.asarray(box_xywh, np.float64).copy()

    def track(self, frame: np.ndarray) -> np.ndarray:
        if self._box is None:
            raise RuntimeError('StaticTracker.track called before initialize')
        return self._box.copy()


def validate_init_box(sequence: Sequence) -> np.ndarray:
    """Returns the frame-0 box as [4] float64 (x, y, w, h).

    Raises ValueError naming the sequence if the box is not finite or has a non-positive size.
    """
    return validate_box_xywh(sequence.init_box, f'sequence {sequence.name}: initial box')


def _read_frame(sequence: Sequence, index: int) -> np.ndarray:
    """sequence.frame(index), with any read error naming the sequence and the frame index."""
    prefix = f'sequence {sequence.name}, frame {index}'
    try:
        return sequence.frame(index)
    except FrameError as e:
        if str(e).startswith(prefix):
            raise
        raise FrameError(f'{prefix}: {e}') from e
    except (IndexError, OSError, ValueError) as e:
        raise FrameError(f'{prefix}: {type(e).__name__}: {e}') from e


def check_init_box_in_frame(sequence: Sequence, box_xywh, frame_hw: tuple[int, int]) -> None:
    """Raises ValueError naming the sequence and the box if the (x, y, w, h) box does not
    overlap the frame [0, W] x [0, H] at all (a box outside the image tracks nothing)."""
    x, y, w, h = (float(v) for v in np.asarray(box_xywh, np.float64).reshape(4))
    height, width = int(frame_hw[0]), int(frame_hw[1])
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f'sequence {sequence.name}: initial box (x, y, w, h) = '
                         f'({x:g}, {y:g}, {w:g}, {h:g}) lies outside frame 0 '
                         f'({width} x {height} pixels)')


class FrameReader:
    """`read_frame(sequence, i)` for runs over sequences: `_read_frame` (errors name the
    sequence and frame), plus two checks on what is read.

    * frame 0: the sequence's initial box must overlap it (`check_init_box_in_frame`);
    * every frame: a size [H, W] different from frame 0's is logged as a warning, once per
      sequence (naming the first such frame; boxes and overlaps would silently mix two
      coordinate systems).
    """

    def __init__(self):
        self._first_shape: dict[str, tuple[int, int]] = {}
        self._warned: set[str] = set()

    def __call__(self, sequence: Sequence, index: int) -> np.ndarray:
        frame = _read_frame(sequence, index)
        shape = tuple(np.shape(frame)[:2])
        if index == 0:
            self._first_shape[sequence.name] = shape
            check_init_box_in_frame(sequence, sequence.init_box, shape)
            return frame
        first = self._first_shape.get(sequence.name)
        if first is not None and shape != first and sequence.name not in self._warned:
            self._warned.add(sequence.name)
            logger.warning('sequence %s, frame %d: size %d x %d (W x H) differs from frame 0 '
                           '(%d x %d); later frames of this sequence are not checked again',
                           sequence.name, index, shape[1], shape[0], first[1], first[0])
        return frame


def _as_box(prediction: Any, sequence: Sequence, index: int) -> np.ndarray:
    box = np.asarray(prediction, np.float64).reshape(-1)
    if box.shape != (4,):
        raise ValueError(f'sequence {sequence.name}, frame {index}: tracker returned shape '
                         f'{np.shape(prediction)}, expected [4] (x, y, w, h)')
    return box


def run_sequence(tracker: Tracker, sequence: Sequence,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Runs `tracker` once over `sequence` (OPE: initialised on frame 0, never reset).

    Returns:
      boxes: [T, 4] float64 (x, y, w, h) in pixels; row 0 is the initial (ground-truth) box.
      times: [T] float64 seconds spent in `initialize` (row 0) / `track` (rows 1..T-1), frame
        decoding excluded.
    Raises ValueError for a bad initial box (not finite, non-positive size, or not overlapping
    frame 0) and FrameError for unreadable frames, both naming the sequence (and frame). A frame
    whose size differs from frame 0's is logged as a warning (once per sequence, FrameReader).
    """
    init_box = validate_init_box(sequence)
    num_frames = len(sequence)
    boxes = np.zeros((num_frames, 4), np.float64)
    times = np.zeros((num_frames,), np.float64)

    read_frame = FrameReader()
    frame = read_frame(sequence, 0)
    start = time.perf_counter()
    tracker.initialize(frame, init_box.copy())
    times[0] = time.perf_counter() - start
    boxes[0] = init_box

    frames = range(1, num_frames)
    if progress:
        frames = progress_bar(frames, desc=sequence.name, unit='frame', leave=False)
    for i in frames:
        frame = read_frame(sequence, i)
        start = time.perf_counter()
        prediction = tracker.track(frame)
        times[i] = time.perf_counter() - start
        boxes[i] = _as_box(prediction, sequence, i)
    return boxes, times


# --- trackers by name: config.package's tracker, or the static baseline -----------------------
# The core names no tracker package: tracking.plugins imports the one config.package names.

def is_static(config) -> bool:
    """True for the static baseline: config None or config.tracker == 'static' (no package)."""
    return config is None or config.get('tracker', None) == 'static'


def expected_variables(config):
    """The abstract variables tree the tracker of `config` needs (its package's
    `abstract_variables(config)`), or None for the static baseline, which needs no weights."""
    if is_static(config):
        return None
    from tracking import plugins
    return plugins.abstract_variables(config)


def benchmark_threshold(config, benchmark: str) -> float:
    """config.test.thresholds[benchmark] if set, else config.test.thresholds.default (a helper
    for packages whose setting depends on the benchmark, e.g. GRM's division threshold)."""
    thresholds = config.test.thresholds
    if benchmark in thresholds:
        return float(thresholds[benchmark])
    return float(thresholds['default'])


def static_tracker_fns():
    """StaticTracker as tracking.api.TrackerFns: state = the initial box ([4] float32), every step
    returns it (score 1)."""
    import jax.numpy as jnp

    from tracking.api import TrackerFns

    def init(variables, frame, frame_hw, box_xywh):
        del variables, frame, frame_hw
        return jnp.asarray(box_xywh, jnp.float32)

    def step(variables, state, frame, frame_hw):
        del variables, frame, frame_hw
        return state, {'box': state, 'score': jnp.ones((), jnp.float32)}

    return TrackerFns(init, step)


def make_tracker_fns(config, variables, benchmark: str):
    """(tracking.api.TrackerFns, variables prepared for them) of the tracker of `config` with its
    settings for `benchmark` (what `make_tracker`'s class runs; used by eval.py
    --batch_sequences): the static baseline for config None or tracker 'static', else
    config.package's (tracking.plugins.make_tracker_fns)."""
    if is_static(config):
        return static_tracker_fns(), variables
    from tracking import plugins
    return plugins.make_tracker_fns(config, variables, benchmark)


class FunctionalTracker:
    """The `Tracker` protocol over a tracker's pure functions (tracking.api.TrackerFns): the
    sequential path of a package that defines no `make_tracker` of its own.

    fns, variables: as `make_tracker_fns` returns them. `init` / `step` are jitted once; each
    frame is passed unpadded (frame_hw = its own size), so a new frame size compiles a new step.
    `initialize(frame [H, W, 3] uint8 RGB, box_xywh [4])`, then `track(frame) -> [4] float64
    (x, y, w, h)`; `score` holds the last step's score.
    """

    def __init__(self, fns, variables):
        import jax
        self._init, self._step = jax.jit(fns.init), jax.jit(fns.step)
        self.variables = jax.device_put(variables)
        self.state = None
        self.score = float('nan')

    @staticmethod
    def _frame(frame: np.ndarray):
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f'frame must be [H, W, 3] uint8 RGB, got {frame.shape} {frame.dtype}')
        return frame, np.asarray(frame.shape[:2], np.int32)

    def initialize(self, frame: np.ndarray, box_xywh: np.ndarray) -> None:
        frame, frame_hw = self._frame(frame)
        box = validate_box_xywh(box_xywh, 'initial box').astype(np.float32)
        self.state = self._init(self.variables, frame, frame_hw, box)
        self.score = 1.0

    def track(self, frame: np.ndarray) -> np.ndarray:
        if self.state is None:
            raise RuntimeError('FunctionalTracker.track called before initialize')
        frame, frame_hw = self._frame(frame)
        self.state, out = self._step(self.variables, self.state, frame, frame_hw)
        self.score = float(out['score'])
        return np.asarray(out['box'], np.float64)


def make_tracker(config, variables, benchmark: str) -> Tracker:
    """Builds the tracker of `config` with its settings for `benchmark`: StaticTracker for
    config.tracker 'static', else config.package's make_tracker(config, variables, benchmark),
    or a `FunctionalTracker` over its `make_tracker_fns` when the package defines no
    make_tracker.

    Raises tracking.plugins.PluginError (a ValueError) naming config.package / config.tracker
    when the package cannot be imported or does not provide the tracker.
    """
    if is_static(config):
        return StaticTracker()
    from tracking import plugins
    package = plugins.tracker_package(config)
    if not callable(getattr(package, 'make_tracker', None)):  # optional: adapt its functions
        return FunctionalTracker(*plugins.make_tracker_fns(config, variables, benchmark))
    return plugins.make_tracker(config, variables, benchmark)
