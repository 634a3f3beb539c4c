"""SiamRPN++ (siam/) against the official pysot reference bundle, plus small unit checks.

The bundle (/work/shared/reference/siamrpn_r50_l234) was produced by pysot on CPU in float32 with
weights rebuilt from the manifest; here the same weights go through `siam.convert.from_official`
(the real conversion path) and the outputs are compared with the bundle's tolerances.
"""
import time

import jax
import numpy as np
import pytest

from configs.siamrpn import get_config
from siam.anchors import base_anchors, tracker_anchors
from siam.convert import from_official, to_official, torch_key
from siam.model import build_model, variable_shapes
from siam import tracker_fns
from siam.functional import prepare_variables
from siam.rpn import combine_levels
from siam.tracker import SiamRPNTracker, cosine_window
from tracking.api import track_video
from tracking.images import load_image

from helpers import SHARED, FakeTensor, reference_state_dict
from tracking.subwindow import get_subwindow, subwindow_bounds

BUNDLE = SHARED / 'reference' / 'siamrpn_r50_l234'
SEQUENCE = SHARED / 'data' / 'sequences' / 'vot' / 'bag'
NUM_FRAMES = 40


@pytest.fixture(scope='module')
def reference(require_shared):
    require_shared(BUNDLE, SEQUENCE, what='SiamRPN++ reference bundle')
    config = get_config('r50_l234')
    state_dict = reference_state_dict(BUNDLE)
    variables = from_official(state_dict, config)
    return dict(config=config, state_dict=state_dict, variables=variables,
                tracker=SiamRPNTracker(config, variables),
                forward=dict(np.load(BUNDLE / 'forward.npz')),
                track=dict(np.load(BUNDLE / 'track.npz')))


def _nchw(x):
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def test_conversion_covers_every_key(reference):
    state_dict, variables = reference['state_dict'], reference['variables']
    assert len(state_dict) == 458
    params = sum(np.size(x) for x in jax.tree_util.tree_leaves(variables['params']))
    assert params == 53_950_624   # pysot's r50_l234 parameter count (spec section 8)
    kernel = variables['params']['backbone']['layer2_0']['downsample_0']['kernel']
    np.testing.assert_array_equal(
        kernel, np.transpose(state_dict['backbone.layer2.0.downsample.0.weight'], (2, 3, 1, 0)))
    head_bn = variables['batch_stats']['rpn_head']['rpn4']['loc']['head_1']
    np.testing.assert_array_equal(head_bn['var'],
                                  state_dict['rpn_head.rpn4.loc.head.1.running_var'])


def _config(conv_impl='xla'):
    config = get_config('r50_l234')
    config.test.conv_impl = conv_impl
    return config


def _winograd_tracker(reference, conv_impl='winograd'):
    return SiamRPNTracker(_config(conv_impl), reference['variables'])


def test_forward_parity(reference):
    _check_forward(reference['tracker'], reference['forward'])


def test_forward_parity_winograd(reference):
    """The Winograd inference path (test.conv_impl='winograd') within the same bounds."""
    _check_forward(_winograd_tracker(reference), reference['forward'])


def _check_forward(tracker, ref):
    template = tracker.run_template(np.transpose(ref['z'], (0, 2, 3, 1)))
    search = tracker.run_track(np.transpose(ref['x'], (0, 2, 3, 1)), template['neck'])
    ours = {'backbone_z2': template['backbone'][2], 'cls': search['cls'], 'loc': search['loc']}
    for i in range(3):
        ours[f'neck_z{i}'] = template['neck'][i]
        ours[f'neck_x{i}'] = search['neck_x'][i]
    report = []
    for name, value in ours.items():
        value, expected = _nchw(value), ref[name]
        assert value.shape == expected.shape, name
        diff = float(np.max(np.abs(value - expected)))
        bound = 1e-4 * max(1.0, float(np.max(np.abs(expected))))
        report.append(f'{name} {diff:.2e} (bound {bound:.2e})')
        assert diff <= bound, f'{name}: max |port - ref| = {diff} > {bound}'
    print('\nforward max diffs: ' + '; '.join(report))


def test_crops_match_reference(reference):
    """get_subwindow + the tracker's init maths give the bundle's z and x crops byte for byte."""
    ref, box = reference['forward'], reference['track']['init_box']
    frames = sorted(SEQUENCE.glob('*.jpg'))
    first, second = (load_image(p)[..., ::-1] for p in frames[:2])   # BGR, like cv2.imread
    center = np.array([box[0] + (box[2] - 1) / 2, box[1] + (box[3] - 1) / 2])
    size = np.array([box[2], box[3]])
    context = 0.5 * np.sum(size)
    side = np.sqrt((size[0] + context) * (size[1] + context))
    average = np.mean(first, axis=(0, 1))
    z_crop = get_subwindow(np.ascontiguousarray(first), center, 127, round(side), average)
    x_crop = get_subwindow(np.ascontiguousarray(second), center, 255, round(side * 255 / 127),
                           average)
    np.testing.assert_array_equal(z_crop, np.transpose(ref['z'][0], (1, 2, 0)))
    np.testing.assert_array_equal(x_crop, np.transpose(ref['x'][0], (1, 2, 0)))


def _reference_state(box):
    """pysot's (center_pos, size) after it returned box = [cx - w/2, cy - h/2, w, h]: [2] float64
    each (exact to float64 rounding, ~1e-13 px)."""
    box = np.asarray(box, np.float64)
    return box[:2] + box[2:] / 2, box[2:].copy()


@pytest.mark.slow
def test_track_parity_teacher_forced(reference):
    """Every frame 1..39 of vot/bag with the tracker's state forced to pysot's state of the
    previous frame (frame 1 from our own initialisation): boxes within 0.01 px and best scores
    within 1e-4 of pysot, and the same search crop (origin and side) as pysot on every frame.

    Through SiamRPNTracker, the adapter over the jitted functional step (one compilation); the
    state's `center` / `size` are set between frames as a re-detecting caller would. This is the
    check that holds on any CPU: it cannot be broken by a float32 rounding difference that moves
    a free-running state across one of pysot's integer crop steps (see the free-run test)."""
    _check_teacher_forced(reference['tracker'], reference['track'])


@pytest.mark.slow
def test_track_parity_teacher_forced_winograd4(reference):
    """The fast path (test.conv_impl='winograd4': the 3x3 convs as Winograd F(4x4, 3x3), about
    14x the float32 rounding of F(2x2), tests/test_siam_winograd.py) under the same teacher
    forcing: every frame 1..39 within 0.01 px and 1e-4 score of pysot."""
    _check_teacher_forced(_winograd_tracker(reference, 'winograd4'), reference['track'])


def _check_teacher_forced(tracker, ref):
    """Frames 1..39, the state forced to pysot's before each (see the test above)."""
    frames = sorted(SEQUENCE.glob('*.jpg'))[:NUM_FRAMES]
    tracker.initialize(load_image(frames[0]), ref['init_box'])
    box_diffs, score_diffs, crop_mismatches = [], [], []
    for i in range(1, NUM_FRAMES):
        if i >= 2:
            tracker.center, tracker.size = _reference_state(ref['boxes'][i - 1])
        window = _search_window(tracker.center, tracker.size)
        if window != _reference_window(ref['boxes'][i - 1], first=i == 1):
            crop_mismatches.append(i)
        box = tracker.track(load_image(frames[i]))
        box_diffs.append(np.max(np.abs(box - ref['boxes'][i])))
        score_diffs.append(abs(tracker.best_score - float(ref['best_scores'][i])))
    print('\nteacher-forced per-frame max box diff (px): '
          + ' '.join(f'{d:.4f}' for d in box_diffs))
    assert not crop_mismatches, f'search crop differs from pysot\'s on frames {crop_mismatches}'
    worst = int(np.argmax(box_diffs))
    assert box_diffs[worst] <= 0.01, f'frame {worst + 1}: box off by {box_diffs[worst]} px'
    assert max(score_diffs) <= 1e-4, max(score_diffs)


def _window_step_margin(box, first, frame_wh):
    """How close (px) pysot's state after returning `box` lies to a step of its next search
    crop: the distance of the crop origin's argument cx - (s + 1)/2 + 0.5 (and cy's) to the
    nearest integer (where floor jumps), and of the unrounded side to the nearest half-integer
    (where round jumps). A port within the 0.01 px box bound can land on the other side of a
    step closer than that, and from there its crop, and so its free run, differ by a pixel.
    An axis whose centre pysot clipped to the frame edge (cx = 0 or W exactly) is not counted:
    the clip gives the same exact value to any port."""
    x, y, w, h = box
    center = np.array([x, y]) + (np.array([w - 1, h - 1]) / 2 if first else np.array([w, h]) / 2)
    center = np.round(center, 9)   # the returned x = cx - w/2 gives cx back to ~1e-13 px
    context = 0.5 * (w + h)
    side = np.sqrt((w + context) * (h + context)) * (255 / 127)
    origin_arg = center - (round(side) + 1) / 2 + 0.5
    free = (center != 0) & (center != np.asarray(frame_wh, np.float64))
    origin_margin = np.abs(origin_arg - np.round(origin_arg))[free]
    side_margin = abs(abs(side - np.floor(side)) - 0.5)
    return float(min([side_margin, *origin_margin]))


@pytest.mark.slow
@pytest.mark.parametrize('conv_impl', ['xla'])
def test_track_parity(reference, conv_impl):
    """40 frames of vot/bag tracked freely from the init box through the functional tracker
    (`jax.jit(track_video)` over `siam.tracker_fns`, one lax.scan, the path SiamRPNTracker also
    runs): boxes within 0.01 px and best scores within 1e-4 of pysot, and the same search crop
    (origin and side), on every frame up to the first frame whose crop differs from pysot's; a
    crop may differ only where pysot's own previous state lies closer to one of the crop's
    integer steps than the 0.01 px box bound (a knife edge that no float32 port can be held to).

    The search crop depends on the state only through integers (floor of the crop origin,
    round(s_x)), so one pixel of crop shift is the only way float32 noise can turn into a
    visible jump. The bundle's trajectory has such a knife edge at frame 20: pysot's frame-19
    centre y (86.99867) lies 0.0013 px below the point where that crop's origin moves by one
    pixel. Where our frame-19 y lands depends on the network's float32 rounding order, i.e. on
    the CPU's kernels: 86.99699 (same side) on the machine where this bundle was first matched,
    87.0043 (other side; 0.0056 px from pysot, inside the bound) on an AVX2-only AMD EPYC with
    jax 0.10.2, for the class tracker of 6f01ae9 and for this path alike (the two within 6.3e-6
    px). `test_track_parity_teacher_forced` checks every frame on any machine; this test checks
    the free run as far as float32 can decide it, and prints where it first leaves pysot's.
    conv_impl 'winograd4' (the fast path, its own rounding) passes the same rule (free run within
    0.0074 px up to frame 19, leaving pysot's at the same frame-20 knife edge: docs/performance.md);
    it is run here only teacher-forced (`test_track_parity_teacher_forced_winograd4`), which
    is what the fast path must hold, to keep the suite within CI's time.
    """
    ref = reference['track']
    frames = np.stack([load_image(p) for p in sorted(SEQUENCE.glob('*.jpg'))[:NUM_FRAMES]])
    config = _config(conv_impl)
    fns = tracker_fns(config)
    run = jax.jit(track_video, static_argnums=0)
    start = time.perf_counter()
    variables = prepare_variables(config, reference['variables'])
    boxes, scores = jax.block_until_ready(run(fns, variables, frames,
                                              np.array(frames.shape[1:3], np.int32),
                                              ref['init_box']))
    seconds = time.perf_counter() - start
    boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
    frame_wh = frames.shape[2:0:-1]
    crop_mismatches = [i for i in range(1, NUM_FRAMES)
                       if _free_run_window(boxes[i - 1], i == 1, frame_wh)
                       != _reference_window(ref['boxes'][i - 1], first=i == 1)]
    last = crop_mismatches[0] - 1 if crop_mismatches else NUM_FRAMES - 1
    box_diffs = np.max(np.abs(boxes - ref['boxes']), axis=1)[1:last + 1]
    score_diffs = np.abs(scores - ref['best_scores'])[1:last + 1]
    print('\nfree-run per-frame max box diff (px): ' + ' '.join(f'{d:.4f}' for d in box_diffs))
    print(f'{conv_impl}: max score diff {score_diffs.max():.2e}; jit(track_video) of '
          f'{NUM_FRAMES} frames '
          f'{seconds:.1f} s with compilation; first crop differing from pysot\'s: '
          f'{crop_mismatches[:1] or "none"}')
    worst = int(np.argmax(box_diffs))
    assert box_diffs[worst] <= 0.01, f'frame {worst + 1}: box off by {box_diffs[worst]} px'
    assert score_diffs.max() <= 1e-4
    if crop_mismatches:
        k = crop_mismatches[0]
        margin = _window_step_margin(ref['boxes'][k - 1], k == 1, frames.shape[2:0:-1])
        prev_diff = box_diffs[-1]          # frame k - 1, the last frame with pysot's crop
        assert margin <= 0.01, (
            f'frame {k}: search crop differs from pysot\'s although pysot\'s state lies '
            f'{margin:.4f} px from the crop\'s nearest integer step and our frame-{k - 1} box '
            f'is {prev_diff:.4f} px from pysot\'s')
        print(f'free run leaves pysot\'s crop at frame {k}: pysot\'s state is {margin:.4f} px '
              f'from a crop step, ours {prev_diff:.4f} px from pysot\'s')


@pytest.mark.slow
def test_tracker_adapter_parity_first_frames(reference):
    """SiamRPNTracker (the initialize/track adapter over the same jitted init/step) on frames
    0..3: boxes within 0.01 px and best scores within 1e-4 of pysot, float64 boxes and state."""
    tracker, ref = reference['tracker'], reference['track']
    frames = sorted(SEQUENCE.glob('*.jpg'))[:4]
    tracker.initialize(load_image(frames[0]), ref['init_box'])
    x, y, w, h = ref['init_box']
    np.testing.assert_array_equal(tracker.center, [x + (w - 1) / 2, y + (h - 1) / 2])
    for i in range(1, len(frames)):
        box = tracker.track(load_image(frames[i]))
        assert box.dtype == np.float64 and tracker.center.dtype == np.float64
        assert np.max(np.abs(box - ref['boxes'][i])) <= 0.01, (i, box, ref['boxes'][i])
        assert abs(tracker.best_score - float(ref['best_scores'][i])) <= 1e-4


def _search_window(center, size):
    """pysot's search crop for state (center, size): (x0, y0, x1, y1) in pixels."""
    context = 0.5 * (size[0] + size[1])
    side = np.sqrt((size[0] + context) * (size[1] + context)) * (255 / 127)
    return subwindow_bounds(center, round(side))


def _free_run_window(box, first, frame_wh, edge_px=1e-3):
    """The search crop our free run took after returning the float32 box (x, y, w, h).

    The step clips its float64 state's centre to [0, W] x [0, H] exactly, but x + w / 2 of the
    float32 box gives an edge back only to ~1e-4 px (e.g. 479.9999924 for cx = 480), and a
    centre just below an integer moves the crop by a pixel (frames 2 and 9 of the bag run with
    conv_impl 'winograd4'). So a centre within `edge_px` of the frame edge is taken as the edge.
    """
    x, y, w, h = np.asarray(box, np.float64)
    center = np.array([x, y]) + (np.array([w - 1, h - 1]) / 2 if first else np.array([w, h]) / 2)
    for axis, edge in enumerate(frame_wh):
        for value in (0.0, float(edge)):
            if abs(center[axis] - value) < edge_px:
                center[axis] = value
    return _search_window(np.round(center, 9), (w, h))


def _reference_window(box, first):
    """The search crop pysot took after returning box (x, y, w, h); `first`: box is the init box.

    The centre is rounded to 1e-9 px so that a state clipped to the image edge (cx = 480), which
    the returned x = cx - w / 2 no longer gives back exactly, keeps its integer crop origin.
    """
    x, y, w, h = box
    offset = np.array([w - 1, h - 1]) / 2 if first else np.array([w, h]) / 2
    return _search_window(np.round(np.array([x, y]) + offset, 9), (w, h))


# --- small unit checks (no reference data needed) -------------------------------------------

def test_base_anchors_and_grid():
    corners = base_anchors()
    sizes = np.stack([corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]], 1)
    np.testing.assert_array_equal(sizes, [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]])
    anchors = tracker_anchors(25)
    assert anchors.shape == (5 * 625, 4) and anchors.dtype == np.float32
    # Row a * 625 + y * 25 + x: anchor 3 (ratio 2), row y = 1, column x = 24.
    np.testing.assert_array_equal(anchors[3 * 625 + 1 * 25 + 24], [96, -88, 40, 80])
    window = cosine_window(25, 5)
    assert window.shape == (3125,) and window[12 * 25 + 12] == 1.0 and window[0] == 0.0


def test_get_subwindow_padding_and_truncation():
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    # Side 3 around (0, 0): x0 = floor(0 - 2 + 0.5) = -2 -> 2 columns and rows of padding.
    crop = get_subwindow(image, (0.0, 0.0), 3, 3, pad_value=(10.9, 20.5, 30.1))
    expected = np.empty((3, 3, 3), np.uint8)
    expected[...] = (10, 20, 30)             # the float colour is truncated, as in pysot
    expected[2, 2] = image[0, 0]
    np.testing.assert_array_equal(crop, expected)
    inside = get_subwindow(image, (2.0, 1.6), 2, 2, pad_value=(0, 0, 0))
    # c = 1.5: x0 = floor(2 - 1.5 + 0.5) = 1, y0 = floor(1.6 - 1) = 0.
    np.testing.assert_array_equal(inside, image[0:2, 1:3])


def test_level_weights_are_softmax_normalised():
    levels = [np.full((1, 2, 2, 1), v, np.float32) for v in (1.0, 2.0, 4.0)]
    logits = np.log(np.array([1.0, 1.0, 2.0], np.float32))   # softmax -> (0.25, 0.25, 0.5)
    np.testing.assert_allclose(combine_levels(levels, logits), np.full((1, 2, 2, 1), 2.75))
    np.testing.assert_allclose(combine_levels(levels), np.full((1, 2, 2, 1), 7 / 3), rtol=1e-6)


def test_converter_round_trip_and_errors():
    config = get_config('tiny')
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(
        lambda spec: rng.standard_normal(spec.shape).astype(spec.dtype),
        variable_shapes(config.model))
    state_dict = to_official(variables)
    assert 'backbone.layer4.0.downsample.0.weight' in state_dict
    assert state_dict['backbone.layer4.0.downsample.0.weight'].shape == (256, 128, 3, 3)
    state_dict['backbone.bn1.num_batches_tracked'] = np.array(7)   # ignored

    restored = from_official({k: FakeTensor(v) for k, v in state_dict.items()}, config)
    jax.tree_util.tree_map(np.testing.assert_array_equal, restored, variables)
    broken = dict(state_dict)
    del broken['rpn_head.rpn3.cls.head.3.bias']
    broken['rpn_head.extra.weight'] = np.zeros(3, np.float32)
    broken['neck.downsample2.downsample.0.weight'] = np.zeros((16, 64, 3, 3), np.float32)
    with pytest.raises(ValueError) as error:
        from_official(broken, config)
    message = str(error.value)
    for key in ('rpn_head.rpn3.cls.head.3.bias', 'rpn_head.extra.weight',
                'neck.downsample2.downsample.0.weight'):
        assert key in message
    # The OTB variant has no level weights: the VOT checkpoint's two extra keys are unexpected.
    otb = get_config('tiny')
    otb.model.rpn.weighted = False
    with pytest.raises(ValueError, match='rpn_head.cls_weight'):
        from_official(state_dict, otb)


def test_tiny_model_shapes():
    config = get_config('tiny')
    model = build_model(config.model)
    shapes = jax.eval_shape(
        lambda z, x: model.init_with_output(jax.random.PRNGKey(0), z, x)[0],
        jax.ShapeDtypeStruct((2, 127, 127, 3), np.float32),
        jax.ShapeDtypeStruct((2, 255, 255, 3), np.float32))
    assert shapes['cls'].shape == (2, 25, 25, 10)
    assert shapes['loc'].shape == (2, 25, 25, 20)
    assert [s.shape for s in shapes['neck_x']] == [(2, 31, 31, 16)] * 3
    assert torch_key(('params', 'rpn_head', 'rpn2', 'cls', 'head_3', 'kernel')) == \
        'rpn_head.rpn2.cls.head.3.weight'
