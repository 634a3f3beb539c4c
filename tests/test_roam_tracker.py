"""ROAM's functional tracker on the tiny config (fast; no shared data): jit + vmap of
track_video over padded frames against the ROAMTracker adapter's separate runs, the lax.cond
update schedule, the sample memory ring buffer, the device crops against the host crops.

The official-parity run (vgg16, bag, track.npz) is tests/test_roam_track.py.
"""
from functools import partial

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.roam import get_config
from roam import functional as rf
from roam.crop import get_search_patch
from roam.crop import search_window as host_window
from roam.tracker import ROAMTracker
from siam.functional import state_scope
from tracking.api import track_video

T, H, W = 12, 40, 56          # frames 1..11 tracked: updates after frames 5 and 10
PAD_H, PAD_W = 52, 72
DB = 4                        # small memory: the ring buffer wraps within 11 frames


def _config():
    c = get_config('tiny')
    c.test.max_db_size = DB
    # The official first frame (one lambda0 step of 3e-3): the mechanics checked here, not
    # tiny's tuned values.
    c.test.n_init_updates = 1
    c.model.meta_lr_init = 3e-3
    return c


def _video(seed):
    """A textured 14x10 box moving over a smooth textured background: [T, H, W, 3] uint8 and
    frame 0's box (x, y, w, h)."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3)).astype(np.float32), (5, 5), 2)
    patch = rng.integers(0, 255, (10, 14, 3)).astype(np.float32)
    frames = []
    for t in range(T):
        f = bg.copy()
        x, y = 12 + 2 * t + (seed % 3), 14 + t // 2
        f[y:y + 10, x:x + 14] = patch
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(frames), np.array([12 + seed % 3, 14, 14, 10], np.float32)


@pytest.fixture(scope='module')
def runs():
    config = _config()
    variables = rf.init_variables(config, jax.random.PRNGKey(3), theta_scale=0.1)
    # An untrained LSTM with rates ~1e-2 blows theta up on these random features (NaN by frame
    # 10); rates ~8e-7 keep every update small but real (theta changes at frames 5 and 10).
    variables['meta_opt']['linear']['bias'] = jnp.full((1,), -14.0, jnp.float32)
    tracker = ROAMTracker(config, variables)
    videos = [_video(s) for s in (0, 1)]
    separate = []
    for frames, box in videos:
        tracker.initialize(frames[0], box)
        rec = dict(boxes=[np.asarray(box, np.float64)], scores=[tracker.best_score], states=[],
                   outs=[])
        for frame in frames[1:]:
            rec['boxes'].append(tracker.track(frame))
            rec['scores'].append(tracker.best_score)
            rec['states'].append(jax.tree_util.tree_map(np.asarray, tracker.state))
            rec['outs'].append(jax.tree_util.tree_map(np.asarray, tracker.last))
        separate.append(rec)
    padded = np.zeros((2, T, PAD_H, PAD_W, 3), np.uint8)
    for i, (frames, _) in enumerate(videos):
        padded[i, :, :H, :W] = frames
        padded[i, :, H:, :] = 255 - 40 * i          # garbage outside the real frame
        padded[i, :, :, W:] = 17 + 90 * i
    fns = tracker.fns
    batched = jax.jit(jax.vmap(partial(track_video, fns), in_axes=(None, 0, 0, 0)))
    boxes, scores = batched(variables, padded, np.array([[H, W]] * 2, np.int32),
                            np.stack([b for _, b in videos]))
    return dict(config=config, separate=separate, boxes=np.asarray(boxes),
                scores=np.asarray(scores))


def test_vmap_of_jit_track_video_on_padded_frames_equals_separate_runs(runs):
    """jit(vmap(track_video)) over two videos padded with garbage to 52x72 gives the adapter's
    unpadded, separate runs (same jitted init/step): boxes within 1e-3 px, scores within 1e-5.
    Each run is genuinely tracking (saves samples, moves)."""
    for i, rec in enumerate(runs['separate']):
        ref = np.stack(rec['boxes'])
        diff = np.abs(runs['boxes'][i] - ref).max()
        print(f'video {i}: max |vmap - separate| {diff:.2e} px')
        assert diff <= 1e-3, (i, diff)
        np.testing.assert_allclose(runs['scores'][i][1:], rec['scores'][1:], atol=1e-5)
        assert np.abs(ref[-1, :2] - ref[0, :2]).max() > 2.0          # it moved
        assert np.all(np.isfinite(ref))
    a, b = (np.stack(r['boxes']) for r in runs['separate'])
    assert np.abs(a - b).max() > 0.5                                 # two different videos


def test_update_schedule(runs):
    """The lax.cond update runs after frames 5 and 10 only: theta, the LSTM step count (2 per
    update) and the filter size change there and nowhere else."""
    for rec in runs['separate']:
        states, outs = rec['states'], rec['outs']
        updated = [int(o['updated']) for o in outs]
        assert updated == [1 if f % 5 == 0 else 0 for f in range(1, T)]
        counts = [int(s['opt'].count) for s in states]
        assert counts == [2 * (f // 5) for f in range(1, T)]
        thetas = [jax.tree_util.tree_leaves(s['theta'])[2] for s in states]   # cf filter
        for f in range(2, T):
            same = np.array_equal(thetas[f - 1], thetas[f - 2])
            assert same == (f % 5 != 0), f
        assert [int(s['frame']) for s in states] == list(range(1, T))


def test_ring_buffer_contents(runs):
    """The memory holds the newest min(count, 4) saved samples at slots count % 4 (FIFO as the
    official list with pop(0)); each entry's label is Tracker.track's Gaussian of its box."""
    m = runs['config'].model
    for rec in runs['separate']:
        saved = []
        for s, o in zip(rec['states'], rec['outs']):
            db = s['db']
            if bool(o['saved']):
                slot = (int(db['count']) - 1) % DB
                saved.append({k: db[k][slot].copy() for k in ('feats', 'labels', 'boxes')})
            assert int(db['count']) == len(saved)
        assert len(saved) > DB                                           # it wrapped
        db = rec['states'][-1]['db']
        for j, entry in enumerate(saved[-DB:]):
            slot = (len(saved) - DB + j) % DB
            for k in entry:
                np.testing.assert_array_equal(db[k][slot], entry[k])
        for entry in saved:
            box, label = entry['boxes'], entry['labels']
            np.testing.assert_allclose(label, _official_label(box, m), rtol=0, atol=1e-6)
            assert np.abs(entry['feats']).max() > 0


def _official_label(box, m):
    """Tracker.track's label of a patch box (cx, cy, w, h) float32, in NumPy as the official
    code computes it (float32 sigma, float64 grid and centre)."""
    box = np.asarray(box, np.float32)
    sigma = np.ceil(box[2:] / m.cell_size) * np.float32(m.output_sigma_factor)
    center = np.round(box[:2] / m.cell_size) + np.floor(m.map_size / 2)
    v = np.linspace(0, m.map_size - 1, m.map_size)
    xs, ys = np.meshgrid(v - center[0], v - center[1])
    return np.exp(-m.alpha * (xs ** 2 / sigma[0] ** 2 + ys ** 2 / sigma[1] ** 2)).astype(np.float32)


def test_memory_order_matches_the_official_list():
    """memory_order on the ring buffer selects what OnlineROAM.meta_update takes from its list
    (FIFO of max_db_size with pop(0), indices i mod len for i = 0..9)."""
    rng = np.random.default_rng(0)
    for db_size in (1, 4, 10):
        ring = np.full(db_size, -1)
        official, count = [], 0
        for sample in range(40):
            if rng.random() < 0.3:
                continue
            if len(official) == db_size:
                official.pop(0)
            official.append(sample)
            ring[count % db_size] = sample
            count += 1
            order = np.asarray(rf.memory_order(count, db_size, 10))
            want = [official[i % len(official)] for i in range(10)]
            assert ring[order].tolist() == want, (db_size, count)


_first_frame_samples = jax.jit(partial(rf.first_frame_samples, get_config('vgg16')))


@pytest.mark.parametrize('box', [(312.142, 146.388, 106.131, 96.414), (2.5, 3.25, 30.0, 11.5),
                                 (400.0, 300.0, 70.0, 50.0), (100.0, 50.0, 7.0, 300.0)])
def test_first_frame_samples_match_the_host_crops(box):
    """The nine first-frame crops: cv2.resize of the uint8 frame to (int(W r), int(H / r)), then
    the host search crop (roam.crop.get_search_patch); float32 rounding only (2.5e-3 of 255, the
    bound of the device crop's own test; a tap or pixel off would be > 0.1).
    Boxes as the official (0, 0, size * 281 / window of the unresized box)."""
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 255, (360, 480, 3)).astype(np.uint8), (3, 3), 1)
    with state_scope(True):
        patches, labels, boxes = _first_frame_samples(
            img, np.array([360, 480], np.int32), jnp.asarray(box, jnp.float64))
    patches, boxes = np.asarray(patches), np.asarray(boxes)
    box = np.asarray(box, np.float64)
    k = 0
    for ratio in (1, 0.8, 1.2):
        for scale in (1, 0.8, 1.2):
            resized = cv2.resize(img, (int(480 * ratio), int(360 / ratio)))
            box_r = box * np.array([ratio, 1 / ratio, ratio, 1 / ratio])
            window = host_window(box_r[2:], 5 / scale)
            ref = get_search_patch(resized, box_r[:2] + np.floor(box_r[2:] / 2), window, 281)
            assert np.abs(patches[k] - ref).max() <= 2.5e-3, (k, np.abs(patches[k] - ref).max())
            np.testing.assert_array_equal(
                boxes[k], np.concatenate([[0, 0], box[2:] * (281 / window)]).astype(np.float32))
            k += 1


def test_search_window_and_resize_sizes_match_python():
    """int(sqrt(w h) s) made odd and int(W r), int(H / r) in float64 on the device equal
    Python's for many sizes."""
    rng = np.random.default_rng(2)
    wh = rng.uniform(1, 600, (2000, 2))
    with state_scope(True):
        got = np.asarray(jax.jit(jax.vmap(lambda s: rf.search_window(s, 5.0)))(
            jnp.asarray(wh, jnp.float64)))
        sizes = np.arange(1, 1706)
        r = jax.jit(lambda n: (jnp.floor(n * 0.8), jnp.floor(n / 0.8), jnp.floor(n * 1.2),
                               jnp.floor(n / 1.2)))(jnp.asarray(sizes, jnp.float64))
    assert got.tolist() == [host_window(x, 5.0) for x in wh]
    for value, f in zip(r, (lambda n: int(n * 0.8), lambda n: int(n / 0.8),
                            lambda n: int(n * 1.2), lambda n: int(n / 1.2))):
        assert np.asarray(value).astype(int).tolist() == [f(int(n)) for n in sizes]


def test_adapter_checks_its_inputs():
    config = _config()
    tracker = ROAMTracker(config, rf.init_variables(config, jax.random.PRNGKey(0), 1.0))
    frame = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(RuntimeError, match='before initialize'):
        tracker.track(frame)
    with pytest.raises(ValueError, match='outside'):
        tracker.initialize(frame, (W + 5, 3, 10, 10))
    with pytest.raises(ValueError, match='uint8'):
        tracker.initialize(frame.astype(np.float32), (3, 3, 10, 10))
    with pytest.raises(ValueError, match='1705'):
        tracker.initialize(np.zeros((20, 1800, 3), np.uint8), (3, 3, 10, 10))


def test_variables_of_a_training_checkpoint_are_accepted():
    """roam.make_tracker (the package protocol) takes from_official's layout and a roam.task
    checkpoint's {'params': {theta0, lambda0, meta_opt}, 'vgg', 'batch_stats'} alike."""
    import roam
    config = _config()
    flat = rf.init_variables(config, jax.random.PRNGKey(0))           # the task's init
    ckpt = {'params': {k: flat[k] for k in ('theta0', 'lambda0', 'meta_opt')},
            'vgg': flat['vgg'], 'batch_stats': {}}
    assert rf.tracker_variables(ckpt).keys() == flat.keys()
    assert rf.tracker_variables(flat) is flat
    assert isinstance(roam.make_tracker(config, ckpt, 'otb'), ROAMTracker)
    with pytest.raises(KeyError, match='vgg'):
        rf.tracker_variables({'params': ckpt['params']})
    with pytest.raises(KeyError, match='meta_opt'):
        rf.tracker_variables({k: flat[k] for k in ('vgg', 'theta0', 'lambda0')})


def test_n_init_updates_repeats_the_lambda0_step():
    """test.n_init_updates = 3 (tiny's departure; official 1): init's theta is three
    theta - lambda0 * grad steps on the nine first-frame samples, by hand; 0 is an error."""
    from roam import model as rm
    from roam.optim import meta_sgd_step
    config = _config()
    config.test.n_init_updates = 3
    variables = rf.init_variables(config, jax.random.PRNGKey(3), theta_scale=0.1)
    frames, box = _video(0)
    state = jax.jit(rf.tracker_fns(config).init)(variables, frames[0], np.array([H, W]), box)
    with state_scope(True):
        patches, labels, boxes = jax.jit(partial(rf.first_frame_samples, config))(
            jnp.asarray(frames[0]), jnp.asarray([H, W], jnp.int32),
            jnp.asarray(box, jnp.float64))
    feats = jax.jit(rf._features(config))(variables['vgg'], patches)
    fs = rm.compute_filter_size(jnp.ceil(boxes[0, 2:] / 4.0), config)
    grad = jax.jit(jax.grad(lambda th: rm.update_loss(th, feats, labels.astype(jnp.float32),
                                                      boxes, fs, config)[0]))
    theta = variables['theta0']
    for _ in range(3):
        theta = meta_sgd_step(theta, grad(theta), variables['lambda0'])
    moved = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                                   theta, variables['theta0'])
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-6
    for a, b in zip(jax.tree_util.tree_leaves(state['theta']), jax.tree_util.tree_leaves(theta)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(b))))
    config.test.n_init_updates = 0
    with pytest.raises(ValueError, match='n_init_updates'):
        rf.tracker_fns(config)
