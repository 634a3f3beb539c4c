"""Tests for tracking/boxes.py: conversions, IoU/GIoU by hand, clip_box, polygons, validation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tracking import boxes


def test_conversions_hand_values():
    xywh = np.array([10.0, 20.0, 30.0, 40.0])
    np.testing.assert_allclose(boxes.xywh_to_xyxy(xywh), [10, 20, 40, 60])
    np.testing.assert_allclose(boxes.xywh_to_cxcywh(xywh), [25, 40, 30, 40])
    np.testing.assert_allclose(boxes.cxcywh_to_xyxy([25.0, 40.0, 30.0, 40.0]), [10, 20, 40, 60])
    np.testing.assert_allclose(boxes.xyxy_to_cxcywh([10.0, 20.0, 40.0, 60.0]), [25, 40, 30, 40])
    np.testing.assert_allclose(boxes.xyxy_to_xywh([10.0, 20.0, 40.0, 60.0]), [10, 20, 30, 40])
    np.testing.assert_allclose(boxes.cxcywh_to_xywh([25.0, 40.0, 30.0, 40.0]), [10, 20, 30, 40])


def test_round_trips_batched():
    rng = np.random.default_rng(0)
    b = rng.uniform(1, 50, size=(3, 5, 4))
    np.testing.assert_allclose(boxes.xyxy_to_xywh(boxes.xywh_to_xyxy(b)), b, rtol=1e-12)
    np.testing.assert_allclose(boxes.cxcywh_to_xyxy(boxes.xyxy_to_cxcywh(b)), b, rtol=1e-12)
    np.testing.assert_allclose(boxes.cxcywh_to_xywh(boxes.xywh_to_cxcywh(b)), b, rtol=1e-12)
    np.testing.assert_allclose(boxes.xyxy_to_cxcywh(boxes.xywh_to_xyxy(b)),
                               boxes.xywh_to_cxcywh(b), rtol=1e-12)


def test_array_module_follows_input():
    b = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    assert isinstance(boxes.xywh_to_xyxy(b), np.ndarray)
    out = boxes.xywh_to_xyxy(jnp.asarray(b))
    assert isinstance(out, jax.Array)
    jitted = jax.jit(lambda x: boxes.iou(boxes.xywh_to_xyxy(x), boxes.xywh_to_xyxy(x)))(b)
    np.testing.assert_allclose(jitted, [1.0])


def test_iou_and_giou_hand_computed():
    a = np.array([0.0, 0.0, 2.0, 2.0])
    b = np.array([1.0, 1.0, 3.0, 3.0])
    # Intersection 1, union 4 + 4 - 1 = 7, enclosing box 3 x 3 = 9.
    assert boxes.iou(a, b) == pytest.approx(1 / 7)
    g, i = boxes.giou(a, b)
    assert i == pytest.approx(1 / 7)
    assert g == pytest.approx(1 / 7 - 2 / 9)
    # Disjoint: iou 0, union 2, enclosing 3 x 1 -> giou = -(3 - 2)/3.
    g, i = boxes.giou([0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0])
    assert i == 0 and g == pytest.approx(-1 / 3)
    # Identical boxes.
    g, i = boxes.giou(a, a)
    assert g == pytest.approx(1.0) and i == pytest.approx(1.0)


def test_iou_zero_union_and_broadcasting():
    point = np.array([1.0, 1.0, 1.0, 1.0])
    assert boxes.iou(point, point) == 0.0
    g, i = boxes.giou(point, point)
    assert g == 0.0 and i == 0.0      # no enclosing area: giou = iou (= 0, zero union)
    a = np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]])[:, None]
    b = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])[None]
    expected = [[1.0, 1 / 7], [0.25, 0.0], [0.0, 0.0]]
    np.testing.assert_allclose(boxes.iou(a, b), expected, rtol=1e-12)


def test_numpy_and_jax_agree():
    rng = np.random.default_rng(1)
    xywh = rng.uniform(0.5, 20, size=(2, 64, 4)).astype(np.float32)
    a, b = boxes.xywh_to_xyxy(xywh[0]), boxes.xywh_to_xyxy(xywh[1])
    g_np, i_np = boxes.giou(a, b)
    g_jx, i_jx = jax.jit(boxes.giou)(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(g_jx, g_np, atol=1e-6)
    np.testing.assert_allclose(i_jx, i_np, atol=1e-6)
    assert np.all(g_np <= i_np + 1e-7) and np.all(g_np >= -1 - 1e-7)
    clip_np = boxes.clip_box_margin(xywh[0] * 10, (80, 100))
    clip_jx = boxes.clip_box_margin(jnp.asarray(xywh[0] * 10), (80, 100))
    np.testing.assert_allclose(clip_jx, clip_np, atol=1e-5)


@pytest.mark.parametrize('box, expected', [
    ((30.0, 20.0, 15.0, 12.0), (30.0, 20.0, 15.0, 12.0)),   # inside: unchanged
    ((-5.0, -5.0, 20.0, 20.0), (0.0, 0.0, 15.0, 15.0)),     # crosses left/top
    ((95.0, 75.0, 20.0, 20.0), (90.0, 70.0, 10.0, 10.0)),   # x1 <= W - 10, y1 <= H - 10
    ((-50.0, -50.0, 20.0, 20.0), (0.0, 0.0, 10.0, 10.0)),   # fully outside: x2 >= 10
    ((50.0, 40.0, 2.0, 3.0), (50.0, 40.0, 10.0, 10.0)),     # tiny: w, h >= 10
    ((10.0, 10.0, 200.0, 200.0), (10.0, 10.0, 90.0, 70.0)),  # x2 <= W, y2 <= H
])
def test_clip_box_margin(box, expected):
    np.testing.assert_allclose(boxes.clip_box_margin(np.array(box), (80, 100)), expected)


def test_polygon_to_xywh():
    diamond = np.array([5.0, 0.0, 10.0, 5.0, 5.0, 10.0, 0.0, 5.0])  # rotated square
    np.testing.assert_allclose(boxes.polygon_to_xywh(diamond), [0, 0, 10, 10])
    batch = np.stack([diamond, diamond + 1])
    np.testing.assert_allclose(boxes.polygon_to_xywh(batch), [[0, 0, 10, 10], [1, 1, 10, 10]])
    np.testing.assert_allclose(boxes.polygon_to_xywh(jnp.asarray(batch)), [[0, 0, 10, 10],
                                                                          [1, 1, 10, 10]])
    with pytest.raises(ValueError):
        boxes.polygon_to_xywh(np.zeros(6))


@pytest.mark.parametrize('bad', [
    (1.0, 2.0, 0.0, 3.0), (1.0, 2.0, 3.0, -1.0), (np.nan, 2.0, 3.0, 3.0), (1.0, np.inf, 3.0, 3.0)])
def test_validate_box_xywh_rejects(bad):
    with pytest.raises(ValueError, match='Crossing frame 7'):
        boxes.validate_box_xywh(bad, 'Crossing frame 7')


def test_validate_box_xywh_accepts():
    out = boxes.validate_box_xywh([1, 2, 3, 4], 'x')
    np.testing.assert_array_equal(out, [1, 2, 3, 4])
