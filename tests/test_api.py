"""tracking.api.track_video on a toy tracker whose step is known in closed form."""
import jax
import jax.numpy as jnp
import numpy as np

from tracking.api import TrackerFns, track_video


def _drift_tracker():
    """A toy tracker: state = box; each step moves the box by `variables` px along x and reports
    the frame's mean grey level (real region only) as its score."""
    def init(variables, frame, frame_hw, box):
        return {'box': box}

    def step(variables, state, frame, frame_hw):
        box = state['box'] + jnp.array([variables, 0.0, 0.0, 0.0])
        h, w = frame_hw[0], frame_hw[1]
        rows = jnp.arange(frame.shape[0])[:, None] < h
        cols = jnp.arange(frame.shape[1])[None, :] < w
        mask = (rows & cols)[..., None]
        score = jnp.sum(jnp.where(mask, frame, 0)) / (h * w * 3)
        return {'box': box}, {'box': box, 'score': score}
    return TrackerFns(init, step)


def test_track_video_scan_jit_and_vmap():
    fns = _drift_tracker()
    frames = np.zeros((5, 6, 8, 3), np.uint8)
    frames[:, :4, :5] = np.arange(5, dtype=np.uint8)[:, None, None, None] * 10
    box0 = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    boxes, scores = jax.jit(track_video, static_argnums=0)(fns, 2.0, frames, [4, 5], box0)
    np.testing.assert_array_equal(boxes[0], box0)
    np.testing.assert_array_equal(boxes[:, 0], [1, 3, 5, 7, 9])
    np.testing.assert_allclose(scores, [1.0, 10, 20, 30, 40])  # padding never counted
    assert boxes.dtype == jnp.float32 and scores.shape == (5,)

    many = jax.vmap(track_video, in_axes=(None, None, 0, 0, 0))
    stacked = np.stack([frames, frames[::-1]])
    b, s = many(fns, 1.0, stacked, np.array([[4, 5], [4, 5]]), np.stack([box0, box0 + 1]))
    np.testing.assert_array_equal(b[1, :, 0], [2, 3, 4, 5, 6])
    np.testing.assert_allclose(s[1], [1.0, 30, 20, 10, 0])
