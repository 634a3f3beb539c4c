"""Helpers shared by the tests: the ../shared folder, reference weights, fake dataset files."""
from __future__ import annotations

import math
import zlib
from pathlib import Path

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
REFERENCE = SHARED / 'reference'
SEQUENCES = SHARED / 'data' / 'sequences'


def fill_rule(key: str, shape: tuple) -> np.ndarray:
    """The reference bundles' rule for weights with ndim >= 2 (shared/reference/README.md):
    uniform(-1, 1) * sqrt(3 / fan_in), drawn from default_rng(crc32(key)) in the PyTorch shape."""
    u = np.random.default_rng(zlib.crc32(key.encode('utf-8'))).random(size=shape)
    fan_in = int(np.prod(shape[1:]))
    return ((2.0 * u - 1.0) * math.sqrt(3.0 / fan_in)).astype(np.float32)


def reference_state_dict(bundle: Path) -> dict:
    """Rebuilds a bundle's official state_dict {key: np.ndarray} from manifest.tsv."""
    stored = np.load(bundle / 'params_1d.npz')
    lines = (bundle / 'manifest.tsv').read_text().splitlines()
    assert lines[0].split('\t') == ['key', 'shape', 'dtype', 'source']
    state_dict = {}
    for line in lines[1:]:
        key, shape_text, _, source = line.split('\t')
        shape = () if shape_text == '-' else tuple(int(s) for s in shape_text.split('x'))
        state_dict[key] = stored[key] if source == 'stored' else fill_rule(key, shape)
        assert state_dict[key].shape == shape, key
    return state_dict


class FakeTensor:
    """What torch.load gives for a tensor, as far as converters see it: .detach().cpu().numpy()."""

    def __init__(self, value):
        self.value = value

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.value


FAKE_W, FAKE_H = 32, 24


def write_jpeg(path, level=0):
    """Writes a 32x24 JPEG, pure red in RGB with green = `level` (to tell frames apart)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = np.zeros((FAKE_H, FAKE_W, 3), np.uint8)
    bgr[..., 2] = 255
    bgr[..., 1] = level
    assert cv2.imwrite(str(path), bgr)


def write_text(path, lines):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{line}\n' for line in lines))


def check_frame(seq, i, level=None):
    """Frame i of a fake sequence is RGB uint8 of the fake size (and has green = level)."""
    frame = seq.frame(i)
    assert frame.shape == (FAKE_H, FAKE_W, 3) and frame.dtype == np.uint8
    assert frame[..., 0].mean() > 240 and frame[..., 2].mean() < 15  # RGB, not BGR
    if level is not None:
        assert abs(frame[..., 1].mean() - level) < 6


def write_square_otb(root: Path, frames: int) -> Path:
    """A one-sequence OTB folder under `root`: 'Square', a white 16x16 square on 64x64 black
    JPEG frames moving 3 px right per frame, with its groundtruth_rect.txt. Returns `root`."""
    seq = root / 'Square'
    (seq / 'img').mkdir(parents=True)
    for i in range(frames):
        frame = np.zeros((64, 64, 3), np.uint8)
        frame[20:36, 10 + 3 * i:26 + 3 * i] = 255
        assert cv2.imwrite(str(seq / 'img' / f'{i + 1:04d}.jpg'), frame)
    (seq / 'groundtruth_rect.txt').write_text(''.join(f'{10 + 3 * i},20,16,16\n'
                                                      for i in range(frames)))
    return root


def drifting_rectangle_video(seed: int, hw, frames: int, origin, velocity, size):
    """A textured background (uniform 0..119, fixed over time) with a (240, 200, 40) rectangle
    moving by `velocity` (dx, dy) px per frame from `origin` (x, y), `size` (w, h) px.
    Returns (frames [frames, H, W, 3] uint8, box0 [4] float32 (x, y, w, h))."""
    h, w = hw
    rng = np.random.default_rng(seed)
    video = np.repeat(rng.integers(0, 120, (1, h, w, 3), dtype=np.uint8), frames, axis=0)
    (x, y), (dx, dy), (bw, bh) = origin, velocity, size
    for t in range(frames):
        video[t, y + dy * t:y + dy * t + bh, x + dx * t:x + dx * t + bw] = (240, 200, 40)
    return video, np.array([x, y, bw, bh], np.float32)


def numpy_variables(shapes, seed: int = 0):
    """Variables for a tree of ShapeDtypeStructs (e.g. `siam.model.variable_shapes`) as Flax's
    defaults make them (kernels N(0, 1/fan_in), biases 0, BatchNorm scale 1 / mean 0 / var 1),
    drawn with numpy: a jitted model init costs a whole compilation of the model on the CPU,
    more than most tests that only need some weights."""
    import jax
    rng = np.random.default_rng(seed)

    def make(path, leaf):
        name = getattr(path[-1], 'key', str(path[-1]))
        if name == 'kernel':
            fan_in = int(np.prod(leaf.shape[:-1]))
            return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
        if name in ('scale', 'var'):
            return np.ones(leaf.shape, np.float32)
        return np.zeros(leaf.shape, np.float32)
    return jax.tree_util.tree_map_with_path(make, shapes)


def tame_rpn_heads(params: dict) -> dict:
    """A copy of SiamRPN++ params whose RPN heads' last layers are scaled (cls x 3e-4, loc x
    3e-6) so that random weights give cls/loc of O(1): unscaled, they are ~1e4/1e5, every
    anchor's exp() overflows and the tracker never moves."""
    import jax
    params = jax.tree_util.tree_map(lambda x: x, params)
    for level in ('rpn2', 'rpn3', 'rpn4'):
        for head, scale in (('cls', 3e-4), ('loc', 3e-6)):
            last = params['rpn_head'][level][head]['head_3']
            last['kernel'] = last['kernel'] * scale
            last['bias'] = last['bias'] * scale
    return params


def flat_variables(state) -> dict:
    """{keystr: numpy array} of a train state's variables ({'params', **model_state}, on the
    host): what the sharding tests compare between processes and steps."""
    import jax
    leaves = jax.tree_util.tree_flatten_with_path(
        jax.device_get({'params': state.params, **state.model_state}))[0]
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def assert_four_devices_match(script: str, config_json: str, out: Path, one_device: dict,
                              timeout: int, extra_args: tuple = ()) -> None:
    """Runs `python script config_json out *extra_args` on 4 virtual CPU devices (a subprocess
    whose __main__ saves its variables to `out` and prints 'devices=4') and checks them against
    `one_device` ({keystr: array}, the same step in this single-device process) within
    rtol 2e-5, atol 2e-6."""
    import os
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(repo),
               XLA_FLAGS='--xla_force_host_platform_device_count=4')
    run = subprocess.run([sys.executable, script, config_json, str(out), *extra_args], env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'devices=4' in run.stdout
    four = np.load(out)
    assert sorted(four.files) == sorted(one_device)
    for key in one_device:
        np.testing.assert_allclose(four[key], one_device[key], rtol=2e-5, atol=2e-6,
                                   err_msg=key)
