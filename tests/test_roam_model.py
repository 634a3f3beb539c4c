"""ROAM model pieces (roam/): crop, VGG and its converters, filter warping, correlation VJP,
labels, anchors, the tie rule, theta layouts, jit/vmap. Parity with the official numbers is in
tests/test_roam_parity.py; these are the unit checks (tiny shapes, seconds)."""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

from configs.roam import get_config
from helpers import REFERENCE, SEQUENCES
from roam import model as rm
from roam.convert import (MAT_INDICES, theta_from_flat, theta_to_flat, vgg_from_matconvnet,
                          vgg_from_torchvision)
from roam.crop import (RGB_MEAN, crop_center, get_search_patch, search_patch_device,
                       search_window)
from roam.vgg import LAYER_NAMES, feature_size, init_params, vgg_features
from tracking.images import load_image

TINY = get_config('tiny')
VGG = get_config('vgg16')
BUNDLE = REFERENCE / 'roam_vgg16'
BAG = SEQUENCES / 'vot' / 'bag'


# ---------------------------------------------------------------- crop

def test_search_window_and_center():
    assert search_window((56, 56), 5) == 281
    assert search_window((10, 10), 5) == 51          # 50 -> odd
    assert search_window((3, 27), 5) == 45
    np.testing.assert_array_equal(crop_center((10.5, 20.0, 7.0, 8.0)), [13.5, 24.0])


@pytest.mark.shared(BUNDLE, BAG, what='ROAM reference bundle and vot/bag')
def test_host_crop_matches_reference():
    """The tracker's frame-1 crop (the whole-frame downscale branch: window 505 > 480) equals
    forward.npz's x + mean exactly; the device crop is within 2.5e-3 of it (cv2's float
    resize goes through IPP, whose taps differ slightly from OpenCV's own)."""
    fwd = np.load(BUNDLE / 'forward.npz')
    frame = load_image(BAG / '00000002.jpg')
    patch = get_search_patch(frame, fwd['crop_center'], int(fwd['crop_window']))
    ref = np.transpose(fwd['x'][0], (1, 2, 0))
    np.testing.assert_array_equal(patch - np.float32(RGB_MEAN), ref)
    dev = jax.jit(search_patch_device, static_argnums=4)(
        frame, np.array(frame.shape[:2], np.int32), fwd['crop_center'].astype(np.float32),
        int(fwd['crop_window']), 281)
    diff = float(np.max(np.abs(np.asarray(dev) - patch)))
    print(f'\ndevice vs host crop (IPP on): {diff:.1e}')
    assert diff <= 2.5e-3


@pytest.mark.parametrize('case', [(120, 160, 80.0, 60.0, 301),     # whole-frame downscale
                                  (128, 160, 30.3, 40.7, 101),     # crop, mean padding
                                  (128, 160, 100.5, 60.2, 57),     # crop inside the frame
                                  (90, 60, 10.5, 80.25, 201)])
def test_device_crop_matches_opencv_without_ipp(case):
    """With IPP off (OpenCV's own float INTER_LINEAR), the jittable crop equals the host crop to
    float32 rounding (<= 1e-4 on 0..255), both branches, with a padded frame."""
    h, w, cx, cy, win = case
    rng = np.random.default_rng(win)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    padded = np.zeros((128, 160, 3), np.uint8)
    padded[:h, :w] = img
    use_ipp = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        host = get_search_patch(img, np.array([cx, cy]), win, 81)
    finally:
        cv2.ipp.setUseIPP(use_ipp)
    dev = jax.jit(search_patch_device, static_argnums=4)(
        padded, np.array([h, w], np.int32), np.array([cx, cy], np.float32), win, 81)
    assert float(np.max(np.abs(np.asarray(dev) - host))) <= 1e-4


# ---------------------------------------------------------------- VGG and its converters

def test_vgg_geometry():
    assert feature_size(281) == 71 and feature_size(81) == 21
    params = init_params(0, TINY.model.vgg_channels)
    out = vgg_features(params, jnp.zeros((2, 81, 81, 3)), TINY.model.vgg_channels)
    assert out.shape == (2, 21, 21, 32)


def _tiny_torch_vgg(rng, channels):
    weights, fan_in = {}, 3
    for name, width in zip(LAYER_NAMES, channels):
        weights[name] = (rng.normal(size=(width, fan_in, 3, 3)).astype(np.float32) * 0.2,
                         rng.normal(size=(width,)).astype(np.float32) * 0.1)
        fan_in = width
    return weights


def _write_matconvnet(path, weights):
    """A MatConvNet-layout .mat: layers{1, i} structs, conv ones with weights{1, 2} =
    {HWIO single, bias [O, 1]}, relu/pool ones without weights, 22 layers to conv4_3."""
    kinds = {}
    for name, index in zip(LAYER_NAMES, MAT_INDICES):
        kinds[index] = name
    layers = np.empty((1, 22), dtype=object)
    for i in range(22):
        if i in kinds:
            w, b = weights[kinds[i]]
            cell = np.empty((1, 2), dtype=object)
            cell[0, 0] = np.transpose(w, (2, 3, 1, 0))        # OIHW -> HWIO
            cell[0, 1] = b.reshape(-1, 1)
            layers[0, i] = {'name': kinds[i], 'type': 'conv', 'weights': cell,
                            'stride': np.array([[1, 1]]), 'pad': np.array([[1, 1, 1, 1]])}
        elif i in (4, 9):
            layers[0, i] = {'name': f'pool{1 + (i == 9)}', 'type': 'pool', 'method': 'max'}
        else:
            layers[0, i] = {'name': f'relu{i}', 'type': 'relu'}
    scipy.io.savemat(str(path), {'layers': layers, 'meta': {'normalization': 'none'}})


def test_vgg_from_matconvnet_and_torchvision(tmp_path):
    """The same tiny weights written as a MatConvNet .mat and as a torchvision state_dict give
    the same HWIO parameters (the official load_mat_model transposes HWIO -> OIHW)."""
    channels = TINY.model.vgg_channels
    weights = _tiny_torch_vgg(np.random.default_rng(0), channels)
    _write_matconvnet(tmp_path / 'vgg.mat', weights)
    from_mat = vgg_from_matconvnet(tmp_path / 'vgg.mat', TINY)
    torchvision = {}
    for name, index in zip(LAYER_NAMES, MAT_INDICES):
        torchvision[f'features.{index}.weight'], torchvision[f'features.{index}.bias'] = \
            weights[name]
    from_tv = vgg_from_torchvision(torchvision, TINY, fold_normalization=False)
    for name in LAYER_NAMES:
        w, b = weights[name]
        np.testing.assert_array_equal(from_mat[name]['kernel'], np.transpose(w, (2, 3, 1, 0)))
        np.testing.assert_array_equal(from_mat[name]['bias'], b)
        np.testing.assert_array_equal(from_tv[name]['kernel'], from_mat[name]['kernel'])
        np.testing.assert_array_equal(from_tv[name]['bias'], from_mat[name]['bias'])
    with pytest.raises(ValueError, match='conv1_1'):
        vgg_from_matconvnet(tmp_path / 'vgg.mat', VGG)             # widths of the real model
    del torchvision['features.21.bias']
    with pytest.raises(KeyError, match='features.21.bias'):
        vgg_from_torchvision(torchvision, TINY)


def test_torchvision_normalisation_folding():
    """With fold_normalization, conv1_1 on ROAM's input (x - rgb_mean) gives what torchvision's
    conv1_1 gives on (x/255 - mean)/std, except on the 1-pixel border (zero padding)."""
    channels = TINY.model.vgg_channels
    weights = _tiny_torch_vgg(np.random.default_rng(1), channels)
    tv = {}
    for name, index in zip(LAYER_NAMES, MAT_INDICES):
        tv[f'features.{index}.weight'], tv[f'features.{index}.bias'] = weights[name]
    folded = vgg_from_torchvision(tv, TINY)['conv1_1']
    plain = vgg_from_torchvision(tv, TINY, fold_normalization=False)['conv1_1']
    x = np.random.default_rng(2).uniform(0, 255, (1, 12, 12, 3)).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

    def conv(p, inp):
        return jax.lax.conv_general_dilated(inp, p['kernel'], (1, 1), 'SAME',
                                            dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                            precision='highest') + p['bias']
    ours = conv(folded, x - np.float32(RGB_MEAN))
    ref = conv(plain, ((x / 255 - mean) / std).astype(np.float32))
    np.testing.assert_allclose(np.asarray(ours)[:, 1:-1, 1:-1], np.asarray(ref)[:, 1:-1, 1:-1],
                               rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- filter size and warping

def test_compute_filter_size():
    wh = np.array([[56, 56], [112, 28], [28, 112], [40, 80], [0.5, 0.2]], np.float32)
    np.testing.assert_array_equal(np.asarray(rm.compute_filter_size(wh, VGG)),
                                  [[21, 21], [43, 11], [11, 43], [15, 31], [21, 21]])
    lo, hi = rm.aspect_range(VGG)
    assert 11.3 < hi < 11.5 and abs(lo * hi - 1) < 0.02
    # outside the range the side is clamped to K = 71 (documented; the official has no cap)
    np.testing.assert_array_equal(np.asarray(rm.compute_filter_size(
        np.array([500.0, 10.0]), VGG)), [71, 3])
    assert rm.fft_size(71, 71) == 108


def _torch_align_corners(out_size, in_size):
    """PyTorch's align_corners=True bilinear weights as a dense [out, in] float64 matrix."""
    a = np.zeros((out_size, in_size))
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    for t in range(out_size):
        src = scale * t
        i0 = int(src)
        i1 = i0 + (1 if i0 < in_size - 1 else 0)
        lam = src - i0
        a[t, i0] += 1 - lam
        a[t, i1] += lam
    return a


@pytest.mark.parametrize('fs', [(21, 21), (23, 21), (11, 43), (7, 9), (45, 45), (1, 3)])
def test_warp_embedding_equals_direct_resize_and_conv(fs):
    """The K x K embedded kernel gives the fs-sized resized kernel in its middle, zeros around,
    and the K-kernel 'same' correlations (direct and FFT) equal the fs-kernel one with padding
    fs//2 (computed exactly in float64) within float32 rounding: 1e-6 of each output's sum of
    |terms|."""
    k = 45
    rng = np.random.default_rng(sum(fs))
    kernel = rng.normal(size=(21, 21, 3, 2)).astype(np.float32)
    fs_w, fs_h = fs
    full = np.asarray(rm.warp_filter(jnp.asarray(kernel), jnp.asarray(fs), k))
    direct = np.einsum('pi,ijco,qj->pqco', _torch_align_corners(fs_h, 21), kernel,
                       _torch_align_corners(fs_w, 21))
    r0, c0 = k // 2 - fs_h // 2, k // 2 - fs_w // 2
    np.testing.assert_allclose(full[r0:r0 + fs_h, c0:c0 + fs_w], direct, rtol=0, atol=1e-5)
    mask = np.ones_like(full, bool)
    mask[r0:r0 + fs_h, c0:c0 + fs_w] = False
    assert not np.any(full[mask])
    x = rng.normal(size=(1, 30, 30, 3)).astype(np.float32)
    # The fs-kernel correlation with padding fs // 2, exactly (float64), from the middle block
    # alone, and the sum of |terms| of each output: float32 rounding of a sum is bounded by a
    # small multiple of u * sum |terms| (u = 6e-8), so that sets the scale. At fs = 45 an output
    # sums 6075 terms (sum |terms| up to ~1.2e3): its float32 rounding is ~2e-4 absolute on
    # any implementation (XLA's conv included), more than a fixed atol could assume.
    block = full[r0:r0 + fs_h, c0:c0 + fs_w].astype(np.float64)
    pad = ((0, 0), (fs_h // 2, fs_h // 2), (fs_w // 2, fs_w // 2), (0, 0))
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x.astype(np.float64), pad), (fs_h, fs_w), axis=(1, 2))   # [1, 30, 30, 3, h, w]
    exact = np.einsum('bijchw,hwco->bijo', windows, block)
    scale = np.einsum('bijchw,hwco->bijo', np.abs(windows), np.abs(block))
    # Direct summation rounds per output (its own sum |terms|); the FFT mixes every input and
    # kernel entry into every output, so its rounding scales with the largest sum instead.
    y_k = rm.same_correlation(jnp.asarray(x), jnp.asarray(full))
    err_k = np.abs(np.asarray(y_k, np.float64) - exact) / scale
    assert err_k.max() <= 1e-6, (fs, err_k.max())            # measured <= 2e-7 (~3 u)
    y_fft = rm.fft_correlation(jnp.asarray(x), jnp.asarray(full))
    err_fft = np.abs(np.asarray(y_fft, np.float64) - exact) / scale.max()
    assert err_fft.max() <= 1e-6, (fs, err_fft.max())        # measured <= 2e-7


def test_same_correlation_vjp_first_and_second_order():
    """The hand-written VJP (direct) equals XLA's autodiff of the plain convolution, also under
    a second differentiation (the first-frame Meta-SGD step differentiates through a
    gradient); so does the FFT correlation's gradient of a gradient."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 9, 9, 3)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(5, 5, 3, 2)).astype(np.float32))
    t = jnp.asarray(rng.normal(size=(2, 9, 9, 2)).astype(np.float32))

    def plain(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), [(2, 2)] * 2,
                                            dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                            precision='highest')

    def loss(f, x, w):
        return jnp.sum((f(x, w) - t) ** 2)

    for argnums in (0, 1):
        a = jax.grad(loss, argnums=argnums + 1)(rm.same_correlation, x, w)
        b = jax.grad(loss, argnums=argnums + 1)(plain, x, w)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-3)

    def inner_step(f, w):          # loss after one gradient step on w, differentiated in w
        g = jax.grad(lambda w_: loss(f, x, w_))(w)
        return loss(f, x, w - 1e-3 * g)
    b = jax.grad(lambda w_: inner_step(plain, w_))(w)
    for corr in (rm.same_correlation, rm.fft_correlation):
        a = jax.grad(lambda w_: inner_step(corr, w_))(w)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-2)


# ---------------------------------------------------------------- labels, anchors, ties

def test_label_and_anchors_geometry():
    lab = np.asarray(rm.gaussian_label((1.4, 1.4), 71))
    assert lab[35, 35] == 1.0 and lab.shape == (71, 71)
    np.testing.assert_allclose(lab[35, 36], np.exp(-0.2 / 1.4 ** 2), rtol=1e-6)
    # peak at round(c / 4) + 35 (x column, y row)
    lab = np.asarray(rm.box_label(jnp.array([9.0, -14.0, 56.0, 56.0]), VGG))
    assert np.unravel_index(lab.argmax(), lab.shape) == (35 - 4, 35 + 2)
    anchors = np.asarray(rm.make_anchors(jnp.array([21, 21]), VGG))
    assert anchors.shape == (5041, 4)
    np.testing.assert_array_equal(anchors[71 * 3 + 5], [4 * (5 - 35), 4 * (3 - 35), 56, 56])
    box = jnp.array([[12.0, -8.0, 40.0, 70.0]])
    deltas = rm.encode_boxes(anchors, box)
    np.testing.assert_allclose(np.asarray(rm.decode_boxes(anchors, deltas)),
                               np.broadcast_to(box, (5041, 4)), rtol=1e-5, atol=1e-4)


def test_positive_anchor_tie_rule():
    """Equal IoUs at the cut: the lowest flat indices (frame * A + anchor) are kept."""
    iou = jnp.array([[0.5, 0.9, 0.5, 0.1], [0.5, 0.2, 0.9, 0.5]])
    np.testing.assert_array_equal(np.sort(np.asarray(rm.positive_anchors(iou, 4))), [0, 1, 2, 6])


# ---------------------------------------------------------------- theta layouts, jit, vmap

def test_theta_flat_roundtrip_and_layout():
    flat = np.arange(rm.theta_size(TINY), dtype=np.float32)
    tree = theta_from_flat(flat, TINY)
    np.testing.assert_array_equal(theta_to_flat(tree), flat)
    np.testing.assert_array_equal(np.asarray(theta_to_flat(jax.tree_util.tree_map(
        jnp.asarray, tree))), flat)
    # conv.weight (64, C, 1, 1) in PyTorch order: entry (o, i) at o * C + i -> kernel[i, o]
    c = TINY.model.feat_channels
    assert tree['cf']['conv']['kernel'][3, 2] == 2 * c + 3
    shapes = jax.tree_util.tree_map(np.shape, tree)
    assert shapes['reg']['filter']['kernel'] == (7, 7, 8, 4)


def test_update_loss_jit_vmap_over_filter_sizes():
    """One jitted, vmapped loss+gradient over samples with different (traced) filter sizes
    equals the per-sample calls."""
    key = jax.random.PRNGKey(0)
    theta = rm.init_theta(key, TINY, scale=1.0)
    feats = jax.random.normal(key, (3, 2, 21, 21, 32))
    boxes = jnp.array([[[0., 0., 16., 16.], [4., -3., 18., 15.]],
                       [[2., 1., 30., 10.], [0., 0., 28., 11.]],
                       [[-5., 2., 8., 24.], [-4., 0., 9., 22.]]])
    labels = jax.vmap(jax.vmap(lambda b: rm.box_label(b, TINY)))(boxes)
    fs = rm.compute_filter_size(boxes[:, 0, 2:], TINY)
    assert len({tuple(np.asarray(f)) for f in fs}) == 3

    def f(fe, la, bo, s):
        return jax.value_and_grad(lambda t: rm.update_loss(t, fe, la, bo, s, TINY)[0])(theta)
    batched = jax.jit(jax.vmap(f))(feats, labels, boxes, fs)
    single = jax.jit(f)
    for i in range(3):
        one = single(feats[i], labels[i], boxes[i], fs[i])
        np.testing.assert_allclose(batched[0][i], one[0], rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(batched[1]), jax.tree_util.tree_leaves(one[1])):
            np.testing.assert_allclose(a[i], b, rtol=1e-4, atol=1e-6)
