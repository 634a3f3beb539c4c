"""Official ROAM weights (tyyyang/ROAM `ROAM.state_dict()`, 46 entries) and VGG-16 weights
(MatConvNet `imagenet-vgg-verydeep-16.mat`, torchvision `vgg16`) -> the pytrees of `roam`.

`from_official(state_dict, config)` returns

    {'vgg': {'conv1_1': {'kernel': [3, 3, I, O], 'bias': [O]}, ..., 'conv4_3': ...},
     'theta0': theta pytree (roam.model), 'lambda0': the same layout (first-step rates),
     'meta_opt': roam.optim meta-parameters (2-layer LSTM + linear)}

Layouts: conv weights OIHW -> HWIO; the 1x1 compression (64, C, 1, 1) -> [C, 64]; LSTM
matrices (80, in) -> [in, 80] in PyTorch's gate order (i, f, g, o), b_ih and b_hh kept apart.

The flat tracking-model vector (what the official code optimises) is `theta_to_flat` /
`theta_from_flat`; its segments are listed by `flat_segments(config)`: cf branch then reg
branch, each conv.weight, conv.bias, cf.weight, cf.bias flattened in PyTorch order.
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from roam.model import theta_shapes
from roam.vgg import LAYER_NAMES

VGG_PREFIX = 'feat_extractor.feat_extractor.features.'
# MatConvNet layer indices of the ten convolutions (= torchvision vgg16 `features.N` indices).
MAT_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)
_THETA_MODULES = {('theta0', 'cf'): 'meta_init.meta_cfnet_param',
                  ('theta0', 'reg'): 'meta_init.meta_regnet_param',
                  ('lambda0', 'cf'): 'meta_init.meta_cfnet_lr',
                  ('lambda0', 'reg'): 'meta_init.meta_regnet_lr'}
_LSTM_PREFIX = 'meta_opti.'


def _m(config):
    return config.model if 'model' in config else config


def as_numpy(value: Any) -> np.ndarray:
    """A state_dict value (np.ndarray, torch tensor or anything with .numpy()) as np.ndarray."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    elif hasattr(value, 'numpy') and not isinstance(value, np.ndarray):
        value = value.numpy()
    return np.asarray(value)


def _take(state_dict, key: str, shape: tuple, where: str) -> np.ndarray:
    if key not in state_dict:
        raise KeyError(f'{where}: missing key {key!r} (have {len(state_dict)} keys)')
    value = as_numpy(state_dict[key]).astype(np.float32)
    if value.shape != tuple(shape):
        raise ValueError(f'{where}: {key!r} has shape {value.shape}, expected {tuple(shape)}')
    return value


# ---------------------------------------------------------------- theta <-> flat / torch

def _oihw(shape_hwio):
    h, w, i, o = shape_hwio
    return (o, i, h, w)


def flat_segments(config) -> list[tuple[str, int, int, tuple]]:
    """[(name, start, stop, pytorch shape)] of the flat theta vector, in order; names like
    'cf.conv.weight', 'reg.cf.weight' (the official module attribute names)."""
    shapes = theta_shapes(config)
    out, offset = [], 0
    for branch in ('cf', 'reg'):
        s = shapes[branch]
        c, k = s['conv']['kernel']
        for name, shape in ((f'{branch}.conv.weight', (k, c, 1, 1)),
                            (f'{branch}.conv.bias', s['conv']['bias']),
                            (f'{branch}.cf.weight', _oihw(s['filter']['kernel'])),
                            (f'{branch}.cf.bias', s['filter']['bias'])):
            size = int(np.prod(shape))
            out.append((name, offset, offset + size, tuple(shape)))
            offset += size
    return out


def _branch_from_torch(weights: dict, xp=np):
    """{'conv.weight' (O,I,1,1), 'conv.bias', 'cf.weight' (O,C,h,w), 'cf.bias'} -> pytree."""
    w = weights['conv.weight']
    return {'conv': {'kernel': xp.transpose(w.reshape(w.shape[0], w.shape[1]), (1, 0)),
                     'bias': weights['conv.bias']},
            'filter': {'kernel': xp.transpose(weights['cf.weight'], (2, 3, 1, 0)),
                       'bias': weights['cf.bias']}}


def _branch_to_torch(branch, xp=np) -> dict:
    k = branch['conv']['kernel']
    return {'conv.weight': xp.transpose(k, (1, 0)).reshape(k.shape[1], k.shape[0], 1, 1),
            'conv.bias': branch['conv']['bias'],
            'cf.weight': xp.transpose(branch['filter']['kernel'], (3, 2, 0, 1)),
            'cf.bias': branch['filter']['bias']}


def theta_from_flat(flat, config):
    """Official flat vector [N] (numpy or jax) -> theta pytree (jax arrays if flat is one)."""
    xp = jnp if isinstance(flat, jnp.ndarray) and not isinstance(flat, np.ndarray) else np
    segments = flat_segments(config)
    if flat.shape != (segments[-1][2],):
        raise ValueError(f'theta_from_flat: expected a vector of {segments[-1][2]} entries, '
                         f'got shape {flat.shape}')
    parts = {'cf': {}, 'reg': {}}
    for name, start, stop, shape in segments:
        branch, leaf = name.split('.', 1)
        parts[branch][leaf] = flat[start:stop].reshape(shape)
    return {b: _branch_from_torch(parts[b], xp) for b in ('cf', 'reg')}


def theta_to_flat(theta):
    """theta pytree -> the official flat vector (jnp if the leaves are jax arrays)."""
    xp = np if isinstance(theta['cf']['conv']['kernel'], np.ndarray) else jnp
    pieces = []
    for branch in ('cf', 'reg'):
        t = _branch_to_torch(theta[branch], xp)
        pieces += [t[k].reshape(-1) for k in ('conv.weight', 'conv.bias', 'cf.weight',
                                              'cf.bias')]
    return xp.concatenate(pieces)


# ---------------------------------------------------------------- LSTM meta-optimizer

def lstm_from_official(state_dict, num_layers: int = 2, hidden: int = 20, num_inputs: int = 5,
                       prefix: str = _LSTM_PREFIX) -> dict:
    """meta_opti.cw_lstm.* and meta_opti.linear.* -> roam.optim meta-parameters."""
    where = 'roam.convert.lstm_from_official'
    params = {}
    for layer in range(num_layers):
        fan_in = num_inputs if layer == 0 else hidden
        p = f'{prefix}cw_lstm.'
        params[f'layer_{layer}'] = {
            'w_ih': _take(state_dict, f'{p}weight_ih_l{layer}', (4 * hidden, fan_in), where).T,
            'w_hh': _take(state_dict, f'{p}weight_hh_l{layer}', (4 * hidden, hidden), where).T,
            'b_ih': _take(state_dict, f'{p}bias_ih_l{layer}', (4 * hidden,), where),
            'b_hh': _take(state_dict, f'{p}bias_hh_l{layer}', (4 * hidden,), where)}
    params['linear'] = {
        'kernel': _take(state_dict, f'{prefix}linear.weight', (1, hidden), where).T,
        'bias': _take(state_dict, f'{prefix}linear.bias', (1,), where)}
    return params


def lstm_to_official(params, prefix: str = _LSTM_PREFIX) -> dict:
    out = {}
    layers = sorted(k for k in params if k.startswith('layer_'))
    for name in layers:
        layer = int(name.split('_')[1])
        p = params[name]
        out[f'{prefix}cw_lstm.weight_ih_l{layer}'] = np.asarray(p['w_ih']).T
        out[f'{prefix}cw_lstm.weight_hh_l{layer}'] = np.asarray(p['w_hh']).T
        out[f'{prefix}cw_lstm.bias_ih_l{layer}'] = np.asarray(p['b_ih'])
        out[f'{prefix}cw_lstm.bias_hh_l{layer}'] = np.asarray(p['b_hh'])
    out[f'{prefix}linear.weight'] = np.asarray(params['linear']['kernel']).T
    out[f'{prefix}linear.bias'] = np.asarray(params['linear']['bias'])
    return out


# ---------------------------------------------------------------- VGG

def _vgg_channels(config):
    return tuple(_m(config).vgg_channels)


def vgg_from_torch_layout(weights: dict, channels, where: str) -> dict:
    """{layer name: (OIHW weight, bias)} -> {layer name: {'kernel' HWIO, 'bias'}}, checking the
    widths against `channels` (conv1_1 .. conv4_3)."""
    params, fan_in = {}, 3
    for name, width in zip(LAYER_NAMES, channels):
        w, b = weights[name]
        if w.shape != (width, fan_in, 3, 3) or b.shape != (width,):
            raise ValueError(f'{where}: {name} has weight {w.shape} / bias {b.shape}, expected '
                             f'{(width, fan_in, 3, 3)} / {(width,)}')
        params[name] = {'kernel': np.transpose(w, (2, 3, 1, 0)).astype(np.float32),
                        'bias': b.astype(np.float32)}
        fan_in = width
    return params


def vgg_from_official(state_dict, config) -> dict:
    """The ten `feat_extractor.feat_extractor.features.convX_Y.{weight,bias}` entries."""
    where = 'roam.convert.vgg_from_official'
    channels, weights, fan_in = _vgg_channels(config), {}, 3
    for name, width in zip(LAYER_NAMES, channels):
        weights[name] = (_take(state_dict, f'{VGG_PREFIX}{name}.weight', (width, fan_in, 3, 3),
                               where),
                         _take(state_dict, f'{VGG_PREFIX}{name}.bias', (width,), where))
        fan_in = width
    return vgg_from_torch_layout(weights, channels, where)


def vgg_from_matconvnet(path, config=None) -> dict:
    """MatConvNet `imagenet-vgg-verydeep-16.mat` -> VGG params, as networks.load_mat_model
    reads it: layers[0, i]['weights'] = {HWIO weight [3, 3, I, O], bias [O, 1]} for the
    MatConvNet indices MAT_INDICES (conv1_1 .. conv4_3). The file's values expect RGB 0..255
    minus the mean (`roam.vgg.preprocess`), so no folding is needed."""
    import scipy.io
    where = f'roam.convert.vgg_from_matconvnet({path})'
    mat = scipy.io.loadmat(str(path))
    if 'layers' not in mat:
        raise KeyError(f'{where}: no "layers" entry (keys: {sorted(mat)})')
    layers = mat['layers'].reshape(-1)
    if len(layers) <= MAT_INDICES[-1]:
        raise ValueError(f'{where}: {len(layers)} layers, need at least {MAT_INDICES[-1] + 1}')
    weights = {}
    for name, index in zip(LAYER_NAMES, MAT_INDICES):
        layer = layers[index]
        layer = layer.reshape(-1)[0] if layer.dtype == object else layer
        if 'weights' not in (layer.dtype.names or ()):
            raise KeyError(f'{where}: layer {index} ({name}) has no weights field '
                           f'(fields: {layer.dtype.names})')
        pair = np.asarray(layer['weights']).reshape(-1)[0].reshape(-1)
        w_hwio, bias = np.asarray(pair[0], np.float32), np.asarray(pair[1], np.float32)
        weights[name] = (np.transpose(w_hwio, (3, 2, 0, 1)), bias.reshape(-1))
    channels = _vgg_channels(config) if config is not None else tuple(
        weights[n][0].shape[0] for n in LAYER_NAMES)
    return vgg_from_torch_layout(weights, channels, where)


TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


def vgg_from_torchvision(state_dict, config=None, fold_normalization: bool = True,
                         rgb_mean=None) -> dict:
    """torchvision `vgg16().state_dict()` (`features.{0,2,5,...,21}.weight/bias`, OIHW) ->
    VGG params.

    torchvision's weights expect (x/255 - mean)/std; ROAM feeds x - rgb_mean (0..255). With
    fold_normalization, conv1_1 is rewritten so that it gives the same output on ROAM's input:
    W' = W / (255 std_c), b' = b + sum W (rgb_mean_c - 255 mean_c) / (255 std_c). That is exact
    except on the one-pixel border, where torchvision's zero padding is a different colour."""
    where = 'roam.convert.vgg_from_torchvision'
    weights = {}
    for name, index in zip(LAYER_NAMES, MAT_INDICES):
        key = f'features.{index}.'
        for suffix in ('weight', 'bias'):
            if key + suffix not in state_dict:
                raise KeyError(f'{where}: missing key {key + suffix!r}')
        weights[name] = (as_numpy(state_dict[key + 'weight']).astype(np.float32),
                         as_numpy(state_dict[key + 'bias']).astype(np.float32))
    if fold_normalization:
        from roam.vgg import RGB_MEAN
        mean_roam = np.asarray(rgb_mean if rgb_mean is not None else RGB_MEAN, np.float64)
        w, b = (x.astype(np.float64) for x in weights['conv1_1'])
        scale = 1.0 / (255.0 * np.asarray(TORCHVISION_STD))
        shift = (mean_roam - 255.0 * np.asarray(TORCHVISION_MEAN)) * scale
        weights['conv1_1'] = ((w * scale[None, :, None, None]).astype(np.float32),
                              (b + np.einsum('oihw,i->o', w, shift)).astype(np.float32))
    channels = _vgg_channels(config) if config is not None else tuple(
        weights[n][0].shape[0] for n in LAYER_NAMES)
    return vgg_from_torch_layout(weights, channels, where)


# ---------------------------------------------------------------- whole model

def from_official(state_dict, config) -> dict:
    """ROAM `state_dict` (46 entries) -> {'vgg', 'theta0', 'lambda0', 'meta_opt'} (see the
    module docstring). Every key is used; an unknown key is an error naming it."""
    where = 'roam.convert.from_official'
    m = _m(config)
    used = set()
    out = {'vgg': vgg_from_official(state_dict, config)}
    used |= {f'{VGG_PREFIX}{n}.{s}' for n in LAYER_NAMES for s in ('weight', 'bias')}
    for (tree, branch), module in _THETA_MODULES.items():
        segs = {n.split('.', 1)[1]: shape for n, _, _, shape in flat_segments(config)
                if n.startswith(branch + '.')}
        weights = {leaf: _take(state_dict, f'{module}.{leaf}', shape, where)
                   for leaf, shape in segs.items()}
        used |= {f'{module}.{leaf}' for leaf in segs}
        out.setdefault(tree, {})[branch] = _branch_from_torch(weights)
    lstm = lstm_from_official(state_dict, m.lstm_layers, m.lstm_hidden, 5)
    out['meta_opt'] = lstm
    used |= set(lstm_to_official(lstm))
    unknown = sorted(set(state_dict) - used)
    if unknown:
        raise KeyError(f'{where}: unexpected keys {unknown[:5]} ({len(unknown)} in all)')
    return out


def to_official(variables, config) -> dict:
    """Inverse of from_official: {key: np.ndarray} in the official layouts."""
    out = {}
    for name in LAYER_NAMES:
        p = variables['vgg'][name]
        out[f'{VGG_PREFIX}{name}.weight'] = np.transpose(np.asarray(p['kernel']), (3, 2, 0, 1))
        out[f'{VGG_PREFIX}{name}.bias'] = np.asarray(p['bias'])
    for (tree, branch), module in _THETA_MODULES.items():
        for leaf, value in _branch_to_torch(
                {k: {kk: np.asarray(vv) for kk, vv in v.items()}
                 for k, v in variables[tree][branch].items()}).items():
            out[f'{module}.{leaf}'] = value
    out.update(lstm_to_official(variables['meta_opt']))
    return out
