"""The functional tracker: a tracker is two pure functions over pytrees with static shapes.

    init(variables, frame, frame_hw, box_xywh) -> state
    step(variables, state, frame, frame_hw) -> (state, out)

frame: [Hp, Wp, 3] uint8 RGB, padded at the bottom and right to a static size; frame_hw: [2]
int32, its real (height, width) in pixels. box_xywh: [4] float32 (x, y, w, h) in pixels. state:
any pytree (a Siamese tracker's centre and size, ROAM's filters, optimiser state and sample
memory). out: a dict holding at least 'box' ([4] float32 x, y, w, h in pixels) and 'score'
([] float32), plus whatever else the tracker reports (e.g. a VOT polygon).

Nothing here is jitted: `track_video` runs one video as one `lax.scan`; wrap it in `jax.jit`
(compiles once per frame shape and length) and `jax.vmap` (many videos of one padded size).
This module holds types and the scan only; it imports no tracker.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Init = Callable[[Any, jax.Array, jax.Array, jax.Array], Any]
Step = Callable[[Any, Any, jax.Array, jax.Array], tuple[Any, dict]]


class TrackerFns(NamedTuple):
    """A tracker as pure functions (see the module docstring for the signatures)."""
    init: Init
    step: Step


def track_video(fns: TrackerFns, variables, frames, frame_hw, box0):
    """Tracks one video from its first-frame box.

    frames: [T, Hp, Wp, 3] uint8 RGB (padded bottom/right to a common size); frame_hw: [2] int32
    real (height, width) of the video's frames; box0: [4] (x, y, w, h) in pixels, frame 0's box.
    Returns (boxes [T, 4] float32 with row 0 = box0, scores [T] float32 with row 0 = 1.0, the
    given box being certain). One `lax.scan` over frames 1..T-1.
    """
    frames = jnp.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f'track_video: frames must be [T, H, W, 3], got {frames.shape}')
    frame_hw = jnp.asarray(frame_hw, jnp.int32)
    box0 = jnp.asarray(box0, jnp.float32)
    state = fns.init(variables, frames[0], frame_hw, box0)

    def body(carry, frame):
        carry, out = fns.step(variables, carry, frame, frame_hw)
        return carry, (jnp.asarray(out['box'], jnp.float32),
                       jnp.asarray(out['score'], jnp.float32))

    _, (boxes, scores) = jax.lax.scan(body, state, frames[1:])
    boxes = jnp.concatenate([box0[None], boxes], axis=0)
    scores = jnp.concatenate([jnp.ones((1,), jnp.float32), scores], axis=0)
    return boxes, scores


__all__ = ['TrackerFns', 'track_video']
