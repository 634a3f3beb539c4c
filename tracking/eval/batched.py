"""Whole benchmarks batched on one device: N slots, one jitted vmapped step (continuous batching).

    frames (decoded on host threads, padded) -> slots -> one vmapped init/step -> protocol
    (one-pass or VOT reset) -> result files as each sequence ends -> metrics (runner)

`run_pending_batched` runs every pending sequence through a tracker's `TrackerFns`
(tracking.api): `batch_sequences` = N slots each hold one sequence; every iteration runs one frame
of every slot at once, and a slot whose sequence ends is refilled with the next sequence on the
next iteration. Per slot the protocol (`OnePassProtocol`, or VOT's `ResetProtocol`) says whether
its frame is an initialisation (frame 0, a VOT re-initialisation) or a tracking step:

* init: a jitted `vmap(fns.init)` over the slots, run only on iterations where some slot starts
  or restarts; its state is taken for those slots only (a per-slot select over the state pytree,
  `lax.select`, which keeps each leaf's dtype, e.g. SiamRPN++'s float64 state);
* step: a jitted `vmap(fns.step)` over all slots; its new state is kept for the tracking slots
  only (slots that initialise this frame, or hold no sequence, keep theirs).
  `fused=True` instead runs init and step in one jitted call every iteration (init computed for
  every slot, selected per slot); benchmarks/batched_eval.py measures both.

Padding. Frames are padded (bottom and right, zeros) to a static (Hp, Wp): the largest frame seen
so far rounded up to `pad_multiple` (64) pixels, so a benchmark whose frames all fit one bucket
compiles init and step once; a larger frame grows the bucket (one recompile per new bucket; the
state does not depend on the frame size, so running slots keep theirs). The real size of each
slot's frame goes in as frame_hw, so the trackers never see the padding.

Decoding. The next frame of every slot is decoded (and checked, tracking.tracker.FrameReader) on a
thread pool while the device computes the current batch (JAX dispatches asynchronously); a VOT
failure jumps 5 frames ahead, and that frame is then decoded on demand.

Failures. A sequence that cannot be loaded, whose initial box or ground truth is unusable, whose
frame cannot be read, or whose results cannot be written is reported (SequenceFailure, logged)
and its slot is freed for the next sequence; the others keep running. Results are written by
`on_finish(sequence, values, times)` as soon as a sequence ends.

Times. Each frame's time is the wall time of the device call(s) of its iteration divided by the
number of slots holding a sequence (the per-frame share of the batched call), so the result
files' time columns keep the one-at-a-time path's meaning (seconds of tracker per frame).
Boxes come from the step's float32 out['box'] (as [4] float64 in the files). VOT regions: a
tracker whose TrackerFns has `region(out, frame_wh)` (SiamAttn: the mask polygon through OpenCV)
gets the step's whole out back on the host and each tracking slot's region is made there and
recorded instead of its box (the polygon time is in the protocol time, not the device time).
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import itertools
import logging
import time
from typing import Any, Callable, Sequence as Seq

import jax
import jax.numpy as jnp
import numpy as np

from tracking.api import TrackerFns
from tracking.data.sequence import Sequence
from tracking.eval.vot_protocol import ResetProtocol, ground_truth_regions
from tracking.logs import progress as progress_bar

logger = logging.getLogger(__name__)

PAD_MULTIPLE = 64
OPE, VOT = 'ope', 'vot'


class OnePassProtocol:
    """One-pass evaluation (OPE) with the interface of `ResetProtocol`: initialise on frame 0's
    ground-truth box, then track every frame. records: [T, 4] float64 boxes (row 0 = the initial
    box), times [T] float64 seconds."""

    def __init__(self, sequence: Sequence):
        from tracking.tracker import validate_init_box  # Late: tracker imports the eval package.
        self.name = sequence.name
        self.num_frames = len(sequence)
        self._init_box = validate_init_box(sequence)
        self.records = np.zeros((self.num_frames, 4), np.float64)
        self.times = np.zeros(self.num_frames, np.float64)
        self.index = 0

    @property
    def done(self) -> bool:
        return self.index >= self.num_frames

    @property
    def needs_init(self) -> bool:
        return self.index == 0

    def init_box(self) -> np.ndarray:
        return self._init_box.copy()

    def record_init(self, seconds: float = 0.0) -> None:
        self.records[0] = self._init_box
        self.times[0] = seconds
        self.index = 1

    def record_track(self, box, frame_wh, seconds: float = 0.0, region=None) -> bool:
        """Records the box (a region, e.g. a mask polygon, is ignored: one-pass benchmarks
        score the axis-aligned box)."""
        del frame_wh, region
        self.records[self.index] = np.asarray(box, np.float64).reshape(4)
        self.times[self.index] = seconds
        self.index += 1
        return False


def make_protocol(kind: str, sequence: Sequence, skip: int | None = None):
    """OnePassProtocol for 'ope', ResetProtocol on the sequence's ground-truth regions for 'vot'.
    Raises ValueError (naming the sequence) for unusable ground truth."""
    if kind == OPE:
        return OnePassProtocol(sequence)
    if kind == VOT:
        regions = ground_truth_regions(sequence)
        if len(regions) != len(sequence):
            raise ValueError(f'sequence {sequence.name}: {len(regions)} ground-truth regions '
                             f'for {len(sequence)} frames')
        return (ResetProtocol(sequence.name, regions) if skip is None
                else ResetProtocol(sequence.name, regions, skip))
    raise ValueError(f"protocol must be {OPE!r} or {VOT!r}, got {kind!r}")


def padded_size(height: int, width: int, multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    """(height, width) rounded up to whole multiples of `multiple` pixels."""
    return (-(-int(height) // multiple) * multiple, -(-int(width) // multiple) * multiple)


def select_slots(mask, new, old):
    """Per-slot choice over two state pytrees with a leading slot axis: new where mask [N] bool,
    else old. `lax.select` keeps each leaf's dtype (no float64 -> float32 promotion rules)."""
    def pick(a, b):
        return jax.lax.select(jax.lax.broadcast_in_dim(mask, a.shape, (0,)), a, b)
    return jax.tree_util.tree_map(pick, new, old)


class BatchedFns:
    """The jitted batched functions of one TrackerFns (slot axis 0 everywhere).

    init_all(variables, frames [N,Hp,Wp,3] u8, frame_hw [N,2] i32, boxes [N,4] f32) -> state
    init(variables, state, frames, frame_hw, boxes, is_init [N] bool) -> state
    step(variables, state, frames, frame_hw, is_track [N] bool) -> (state, boxes [N,4] f32,
      scores [N] f32)
    fused(variables, state, frames, frame_hw, boxes, is_init, is_track) -> the same as init
      then step, in one call.
    step_out / fused_out: as step / fused, returning (state, out) with the step's whole out
      dict (leading slot axis), for trackers whose VOT region is made on the host from it.
    Each compiles once per (N, Hp, Wp).
    """

    def __init__(self, fns: TrackerFns):
        vinit = jax.vmap(fns.init, in_axes=(None, 0, 0, 0))
        vstep = jax.vmap(fns.step, in_axes=(None, 0, 0, 0))

        def init(variables, state, frames, frame_hw, boxes, is_init):
            return select_slots(is_init, vinit(variables, frames, frame_hw, boxes), state)

        def step_out(variables, state, frames, frame_hw, is_track):
            new_state, out = vstep(variables, state, frames, frame_hw)
            return select_slots(is_track, new_state, state), out

        def step(variables, state, frames, frame_hw, is_track):
            state, out = step_out(variables, state, frames, frame_hw, is_track)
            return (state, jnp.asarray(out['box'], jnp.float32),
                    jnp.asarray(out['score'], jnp.float32))

        def fused(variables, state, frames, frame_hw, boxes, is_init, is_track):
            state = init(variables, state, frames, frame_hw, boxes, is_init)
            return step(variables, state, frames, frame_hw, is_track)

        def fused_out(variables, state, frames, frame_hw, boxes, is_init, is_track):
            state = init(variables, state, frames, frame_hw, boxes, is_init)
            return step_out(variables, state, frames, frame_hw, is_track)

        self.init_all = jax.jit(vinit)
        self.init = jax.jit(init)
        self.step = jax.jit(step)
        self.fused = jax.jit(fused)
        self.step_out = jax.jit(step_out)
        self.fused_out = jax.jit(fused_out)


@functools.lru_cache(maxsize=8)
def batched_fns(fns: TrackerFns) -> BatchedFns:
    """BatchedFns of `fns`, one per TrackerFns (runs with the same functions, e.g. OPE then VOT,
    reuse the compiled programs)."""
    return BatchedFns(fns)


@dataclasses.dataclass
class _Slot:
    sequence: Sequence
    protocol: Any
    frames: dict            # frame index -> Future of the decoded [H, W, 3] uint8 frame
    hw: tuple = (0, 0)      # (H, W) of the frame now in the batch buffer


@dataclasses.dataclass
class BatchStats:
    """What a batched run spent its time on (seconds), for benchmarks."""
    iterations: int = 0
    slot_frames: int = 0        # frames run (init + track), over all slots
    device_s: float = 0.0       # inside the jitted calls, until their outputs are on the host
    wait_frames_s: float = 0.0  # waiting for decoded frames
    assemble_s: float = 0.0     # copying frames into the padded batch
    protocol_s: float = 0.0     # protocol decisions (VOT overlaps), result files
    total_s: float = 0.0
    compiles: int = 0           # padded sizes used (each compiles init and step)


def run_pending_batched(make_fns: Callable[[], tuple[TrackerFns, Any]],
                        sequences: Seq[Sequence], is_done: Callable[[Sequence], bool],
                        on_finish: Callable[[Sequence, Any, np.ndarray], None], protocol: str,
                        description: str, progress: bool, batch_sequences: int,
                        pad_multiple: int = PAD_MULTIPLE, fused: bool = False,
                        workers: int = 2, stats: BatchStats | None = None) -> list:
    """Runs every sequence that is not `is_done` through N = batch_sequences slots.

    make_fns() -> (TrackerFns, variables): called once, only if some sequence has to run (its
      errors propagate: they are not a sequence's fault).
    on_finish(sequence, records, times): writes one finished sequence's results (OPE: records
      [T, 4] float64 boxes; VOT: the list of codes / boxes), times [T] float64 seconds.
    protocol: 'ope' or 'vot'. Returns the SequenceFailures, in the order they happened.
    """
    from tracking.eval.runner import SequenceFailure  # Late: runner imports this module lazily.
    from tracking.tracker import FrameReader
    if int(batch_sequences) < 1:
        raise ValueError(f'batch_sequences must be >= 1, got {batch_sequences}')
    if protocol not in (OPE, VOT):
        raise ValueError(f"protocol must be {OPE!r} or {VOT!r}, got {protocol!r}")
    stats = stats if stats is not None else BatchStats()
    started = time.perf_counter()
    todo = collections.deque(s for s in sequences if not is_done(s))
    skipped = len(sequences) - len(todo)
    if skipped:
        logger.info('%s: %d of %d sequences already have complete results, skipping them',
                    description, skipped, len(sequences))
    failures: list = []
    if not todo:
        return failures
    fns, variables = make_fns()
    batched = batched_fns(fns)
    # VOT region from the step's out on the host (SiamAttn's mask polygon), when the tracker
    # has one: fns.region(out of one slot, (W, H)) -> [k, 2] corners or None.
    region_fn = getattr(fns, 'region', None) if protocol == VOT else None
    num_slots = int(batch_sequences)
    slots: list[_Slot | None] = [None] * num_slots
    read_frame = FrameReader()
    pool = concurrent.futures.ThreadPoolExecutor(max(1, int(workers)))
    bar = progress_bar(total=len(todo), desc=description, unit='seq', enabled=progress)

    def fail(slot_index: int, sequence: Sequence, error: Exception) -> None:
        failure = SequenceFailure(sequence.name, f'{type(error).__name__}: {error}')
        logger.error('sequence failed: %s', failure)
        failures.append(failure)
        slots[slot_index] = None
        bar.update(1)

    def fetch(slot: _Slot, index: int):
        """The Future of frame `index` of the slot's sequence (submitted now if not yet)."""
        if index not in slot.frames:
            slot.frames[index] = pool.submit(read_frame, slot.sequence, index)
        return slot.frames[index]

    early: dict[int, Any] = {}   # id(sequence) -> Future of frame 0, decoded ahead of its slot

    def fill(slot_index: int) -> None:
        while slots[slot_index] is None and todo:
            sequence = todo.popleft()
            future = early.pop(id(sequence), None)
            try:
                slot = _Slot(sequence, make_protocol(protocol, sequence),
                             {} if future is None else {0: future})
            except Exception as e:  # pylint: disable=broad-except; reported, the others run.
                slots[slot_index] = None
                fail(slot_index, sequence, e)
                continue
            slots[slot_index] = slot
            fetch(slot, slot.protocol.index)

    buffer = None
    frame_hw = np.zeros((num_slots, 2), np.int32)
    boxes = np.zeros((num_slots, 4), np.float32)
    state = None
    try:
        while True:
            for i in range(num_slots):
                fill(i)
            # This iteration's frame of every slot (a slot whose frame fails is refilled).
            wait_start = time.perf_counter()
            frames: dict[int, np.ndarray] = {}
            pending = [i for i in range(num_slots) if slots[i] is not None]
            while pending:
                i = pending.pop(0)
                slot = slots[i]
                index = slot.protocol.index
                try:
                    frames[i] = _as_rgb(fetch(slot, index).result(), slot.sequence, index)
                except Exception as e:  # pylint: disable=broad-except; the slot is freed.
                    fail(i, slot.sequence, e)
                    fill(i)
                    if slots[i] is not None:
                        pending.append(i)
                    continue
                for old in [k for k in slot.frames if k <= index]:
                    del slot.frames[old]
            stats.wait_frames_s += time.perf_counter() - wait_start
            if not frames:
                break
            # Assemble the padded batch.
            assemble_start = time.perf_counter()
            need_h = max(f.shape[0] for f in frames.values())
            need_w = max(f.shape[1] for f in frames.values())
            if buffer is None or need_h > buffer.shape[1] or need_w > buffer.shape[2]:
                old_hw = (0, 0) if buffer is None else buffer.shape[1:3]
                pad_h, pad_w = padded_size(max(need_h, old_hw[0]), max(need_w, old_hw[1]),
                                           pad_multiple)
                buffer = np.zeros((num_slots, pad_h, pad_w, 3), np.uint8)
                frame_hw[:] = (pad_h, pad_w)   # Slots without a sequence: a whole zero frame.
                stats.compiles += 1
                for slot in slots:
                    if slot is not None:
                        slot.hw = (0, 0)
            is_init = np.zeros(num_slots, bool)
            for i, frame in frames.items():
                slot = slots[i]
                h, w = frame.shape[:2]
                if slot.hw != (h, w):
                    buffer[i] = 0
                    slot.hw = (h, w)
                buffer[i, :h, :w] = frame
                frame_hw[i] = (h, w)
                if slot.protocol.needs_init:
                    is_init[i] = True
                    boxes[i] = slot.protocol.init_box().astype(np.float32)
            is_track = np.zeros(num_slots, bool)
            is_track[list(frames)] = True
            is_track &= ~is_init
            for i in range(num_slots):   # Slots without a sequence start from a valid box.
                if slots[i] is None and state is None:
                    boxes[i] = (0, 0, max(frame_hw[i, 1] // 2, 1), max(frame_hw[i, 0] // 2, 1))
            stats.assemble_s += time.perf_counter() - assemble_start
            # The device: init where needed, step the others.
            device_start = time.perf_counter()
            out_boxes = out_all = None
            if state is None:
                state = batched.init_all(variables, buffer, frame_hw, boxes)
                if is_track.any():   # cannot happen: every slot starts with an init
                    raise AssertionError('batched runner: first iteration with a tracking slot')
            elif fused and region_fn is not None:
                state, out_all = batched.fused_out(variables, state, buffer, frame_hw, boxes,
                                                   is_init, is_track)
            elif fused:
                state, out_boxes, _ = batched.fused(variables, state, buffer, frame_hw, boxes,
                                                    is_init, is_track)
            else:
                if is_init.any():
                    state = batched.init(variables, state, buffer, frame_hw, boxes, is_init)
                if is_track.any() and region_fn is not None:
                    state, out_all = batched.step_out(variables, state, buffer, frame_hw,
                                                      is_track)
                elif is_track.any():
                    state, out_boxes, _ = batched.step(variables, state, buffer, frame_hw,
                                                       is_track)
            # Decode the frames after this one while the device computes (and frame 0 of the
            # sequences that will take the slots whose sequences end now).
            ending = 0
            for i in frames:
                slot = slots[i]
                nxt = slot.protocol.index + 1
                if nxt < slot.protocol.num_frames:
                    fetch(slot, nxt)
                else:
                    ending += 1
            for sequence in itertools.islice(todo, ending):
                if id(sequence) not in early:
                    early[id(sequence)] = pool.submit(read_frame, sequence, 0)
            if out_all is not None:
                out_all = jax.device_get(out_all)
                out_boxes = np.asarray(out_all['box'])
            elif out_boxes is not None:
                out_boxes = np.asarray(out_boxes)
            else:
                jax.block_until_ready(state)
            seconds = (time.perf_counter() - device_start) / len(frames)
            stats.device_s += time.perf_counter() - device_start
            stats.iterations += 1
            stats.slot_frames += len(frames)
            # The protocols decide; finished sequences are written and their slots freed.
            protocol_start = time.perf_counter()
            for i, frame in frames.items():
                slot = slots[i]
                try:
                    if is_init[i]:
                        slot.protocol.record_init(seconds)
                    else:
                        frame_wh = (frame.shape[1], frame.shape[0])
                        region = None
                        if region_fn is not None:
                            region = region_fn(jax.tree_util.tree_map(lambda a: a[i], out_all),
                                               frame_wh)
                        slot.protocol.record_track(out_boxes[i].astype(np.float64), frame_wh,
                                                   seconds, region)
                    if slot.protocol.done:
                        on_finish(slot.sequence, slot.protocol.records, slot.protocol.times)
                        slots[i] = None
                        bar.update(1)
                except Exception as e:  # pylint: disable=broad-except; the slot is freed.
                    fail(i, slot.sequence, e)
            stats.protocol_s += time.perf_counter() - protocol_start
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        stats.total_s += time.perf_counter() - started
    return failures


def _as_rgb(frame, sequence: Sequence, index: int) -> np.ndarray:
    """[H, W, 3] uint8 (grey [H, W] / [H, W, 1] repeated); ValueError naming the frame else."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if (frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (1, 3)
            or frame.shape[0] < 1 or frame.shape[1] < 1):
        raise ValueError(f'sequence {sequence.name}, frame {index}: expected [H, W, 3] uint8, '
                         f'got {frame.shape} {frame.dtype}')
    return np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame


__all__ = ['BatchStats', 'BatchedFns', 'batched_fns', 'OPE', 'OnePassProtocol', 'PAD_MULTIPLE', 'VOT',
           'make_protocol', 'padded_size', 'run_pending_batched', 'select_slots']
