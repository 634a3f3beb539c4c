"""VOT's supervised (reset) protocol as a per-sequence state machine.

The reset protocol (`run_supervised`)
------------------------------------
Frame 0 and every re-initialisation frame are recorded as code 1; the tracker is initialised
there on pysot's `get_axis_aligned_bbox` box of the ground-truth polygon (`init_box_from_region`).
On any later frame the tracker's box is compared with the ground truth using the raster overlap
with bounds (W, H) of that frame; overlap > 0 records the box, anything else (0, also for a
box with a NaN value) records code 2 (failure) and the tracker is re-initialised `skip` = 5 frames
later
(PySOT: `frame_counter = idx + 5`); the frames in between are code 0 and are not decoded.


`ResetProtocol` holds one sequence's protocol state (records, times, the next frame to run) and
decides everything from the boxes it is given, so the sequential runner (`run_supervised`, one
tracker object) and the batched runner (tracking.eval.batched, one slot per sequence, a reset is
that slot's re-initialisation) share one implementation:

    protocol = ResetProtocol(name, regions)        # regions [T, 8] ground-truth polygons
    while not protocol.done:
        index = protocol.index                     # the frame to run now
        if protocol.needs_init:                    # code 1 frame
            initialise on protocol.init_box() (xywh [4] float64); protocol.record_init(seconds)
        else:
            track -> box; protocol.record_track(box, (W, H) of the frame, seconds)
    protocol.records, protocol.times               # for tracking.eval.results.write_vot_records
"""
from __future__ import annotations

import numpy as np

from tracking.eval.region import (CODE_FAILURE, CODE_INIT, CODE_SKIP, init_box_from_region,
                                  region_overlap, usable_region)

SKIP_INITIALIZE = 5


def ground_truth_regions(sequence) -> np.ndarray:
    """[T, 8] polygons of a Sequence: extra['polygons'] (VOT reader) or the boxes' corners."""
    if 'polygons' in sequence.extra:
        return np.asarray(sequence.extra['polygons'], np.float64)
    boxes = np.asarray(sequence.boxes, np.float64)
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]
    return np.stack([x0, y0, x1, y0, x1, y1, x0, y1], axis=1)


def image_size(sequence) -> tuple[int, int]:
    """(W, H): extra['image_size'] if the reader gave it, else the shape of frame 0."""
    if 'image_size' in sequence.extra:
        width, height = sequence.extra['image_size']
        return int(width), int(height)
    frame = sequence.frame(0)
    return int(frame.shape[1]), int(frame.shape[0])


class ResetProtocol:
    """One sequence's reset protocol: which frame runs next, init or track, and its records.

    name: the sequence name (for errors); regions: [T, 8] (or [T, 4]) ground-truth regions, one
    per frame; skip: frames from a failure to the re-initialisation (PySOT 5).
    Attributes: records (list, one entry per frame decided so far: 1, 2, 0 or a [4] float64
    box), times ([T] float64 seconds per frame, 0 for skipped frames), index (the frame to run
    next, == T when done), needs_init (that frame is an initialisation), done.
    Frames between a failure and its re-initialisation, and re-initialisation frames with
    unusable ground truth (NaN or zero area), are recorded as code 0 without being run; frame 0
    must be usable (ValueError naming the sequence).
    """

    def __init__(self, name: str, regions, skip: int = SKIP_INITIALIZE):
        self.name = name
        self.regions = np.asarray(regions, np.float64)
        self.num_frames = len(self.regions)
        if self.num_frames < 1:
            raise ValueError(f'sequence {name}: no ground-truth regions')
        if not usable_region(self.regions[0]):
            raise ValueError(f'sequence {name}: frame 0 ground truth is not usable: '
                             f'{self.regions[0].tolist()}')
        self.skip = int(skip)
        self.records: list = []
        self.times = np.zeros(self.num_frames, np.float64)
        self._init_at = 0
        self._advance()

    @property
    def index(self) -> int:
        """The frame to run next (num_frames when the sequence is done)."""
        return len(self.records)

    @property
    def done(self) -> bool:
        return self.index >= self.num_frames

    @property
    def needs_init(self) -> bool:
        """True when frame `index` is an initialisation (code 1) frame."""
        return not self.done and self.index == self._init_at

    def init_box(self) -> np.ndarray:
        """[4] float64 (x, y, w, h): pysot's axis-aligned box of frame `index`'s region."""
        if not self.needs_init:
            raise RuntimeError(f'sequence {self.name}: frame {self.index} is not an init frame')
        return init_box_from_region(self.regions[self.index])

    def record_init(self, seconds: float = 0.0) -> None:
        """The tracker was initialised on frame `index`: records code 1 and moves on."""
        if not self.needs_init:
            raise RuntimeError(f'sequence {self.name}: frame {self.index} is not an init frame')
        self.times[self.index] = seconds
        self.records.append(CODE_INIT)
        self._advance()

    def record_track(self, box, frame_wh, seconds: float = 0.0, region=None) -> bool:
        """The tracker gave `box` ([4] x, y, w, h px) on frame `index` of size frame_wh (W, H),
        and optionally a polygon `region` ([k, 2] or [2k] corners, k >= 3: e.g. SiamAttn's mask
        polygon), which then stands for the box (PySOT reports outputs['polygon'] when the
        tracker has a mask).

        Records the box (or region) when its raster overlap (bounds (W, H)) with the ground
        truth is > 0, else code 2 (a NaN box is a failure) and schedules the re-initialisation
        `skip` frames later. Returns True for a failure.
        """
        if self.done or self.needs_init:
            raise RuntimeError(f'sequence {self.name}: frame {self.index} is not a track frame')
        index = self.index
        box = np.asarray(box if region is None else region, np.float64).reshape(-1)
        self.times[index] = seconds
        failed = not region_overlap(box, self.regions[index], tuple(frame_wh)) > 0
        if failed:
            self.records.append(CODE_FAILURE)
            self._init_at = index + self.skip
        else:
            self.records.append(box)
        self._advance()
        return failed

    def _advance(self) -> None:
        """Records code 0 for frames that are not run (after a failure; unusable GT at a
        re-initialisation frame moves the initialisation to the next frame)."""
        while not self.done:
            index = self.index
            if index < self._init_at:
                self.records.append(CODE_SKIP)
            elif index == self._init_at and not usable_region(self.regions[index]):
                self.records.append(CODE_SKIP)
                self._init_at = index + 1
            else:
                return


def run_supervised(tracker, sequence, skip: int = SKIP_INITIALIZE, read_frame=None
                   ) -> tuple[list, np.ndarray]:
    """Runs `tracker` over `sequence` with VOT's reset protocol (PySOT tools/test.py).

    read_frame(sequence, i) -> [H, W, 3] uint8 (default sequence.frame(i)).
    A tracker whose `polygon` attribute is not None after `track` (SiamAttn with its mask) is
    scored and recorded by that polygon ([4, 2]) instead of its box.
    Returns:
      records: T entries, 1 (init), 2 (failure), 0 (skipped) or a [4] float64 (x, y, w, h) box.
      times: [T] float64 seconds in `initialize` / `track` (a failure frame holds its `track`
        time, skipped frames 0).
    Failure, re-initialisation and unusable ground truth: `ResetProtocol`. Frame 0 must be
    usable (ValueError naming the sequence).
    """
    from tracking.tracker import _as_box, _read_frame  # Late: tracker imports the eval package.
    read_frame = read_frame or _read_frame
    regions = ground_truth_regions(sequence)
    if len(regions) != len(sequence):
        raise ValueError(f'sequence {sequence.name}: {len(regions)} ground-truth regions for '
                         f'{len(sequence)} frames')
    protocol = ResetProtocol(sequence.name, regions, skip)
    while not protocol.done:
        index = protocol.index
        frame = read_frame(sequence, index)
        if protocol.needs_init:
            box = protocol.init_box()
            start = _now()
            tracker.initialize(frame, box)
            protocol.record_init(_now() - start)
            continue
        start = _now()
        prediction = tracker.track(frame)
        seconds = _now() - start
        polygon = getattr(tracker, 'polygon', None)
        protocol.record_track(_as_box(prediction, sequence, index),
                              (frame.shape[1], frame.shape[0]), seconds,
                              None if polygon is None else _as_polygon(polygon, sequence, index))
    return protocol.records, protocol.times


def _as_polygon(polygon, sequence, index: int) -> np.ndarray:
    """A tracker's polygon as [2k] float64 (k >= 3 corners); ValueError naming the frame else."""
    values = np.asarray(polygon, np.float64).reshape(-1)
    if values.size < 6 or values.size % 2:
        raise ValueError(f'sequence {sequence.name}, frame {index}: tracker polygon has shape '
                         f'{np.shape(polygon)}, expected [k, 2] corners with k >= 3')
    return values


def _now() -> float:
    import time
    return time.perf_counter()


__all__ = ['SKIP_INITIALIZE', 'ResetProtocol', 'ground_truth_regions', 'image_size',
           'run_supervised']
