"""pysot checkpoints (model.pth state_dicts) -> Flax variables of `siam.model.SiamRPN`, or of
`siam.siamattn.SiamAttn` when the config's model.arch is 'siamattn' (configs/siamattn.py).

The Flax tree mirrors pysot's module names: a Flax path maps to a PyTorch key by turning a
trailing `_<digits>` of a module name into `.<digits>` (`layer2_0` -> `layer2.0`,
`head_3` -> `head.3`) and the leaf names as below. Conv kernels go from (O, I, kh, kw) to
(kh, kw, I, O), linear weights from (O, I) to (I, O), ConvTranspose2d weights
(`transpose_kernel`) from (I, O, kh, kw) to (kh, kw, I, O). `*.num_batches_tracked` entries are
ignored. The `alexnetlegacy` backbone (config model.backbone.name) keeps pysot's single
`features` Sequential: `layer{L}_{0,1}` map to `backbone.features.{i}` (see
siam.backbones.alexnet.LEGACY_INDEX); `alexnet` keeps `backbone.layer{L}.{0,1}`.

CLI: python -m siam.convert IN.pth OUT_DIR --config configs/siamrpn.py:r50_l234
     python -m siam.convert IN.pth OUT_DIR --config configs/siamattn.py:r50_l234
(IN may also be a .npz of the state_dict; .pth files are read without torch by
`tracking.torch_pickle.load_weights`.)
"""
from __future__ import annotations

import re

import jax
import numpy as np

from siam.backbones.alexnet import LEGACY_INDEX
from siam.model import variable_shapes
from tracking.checkpoint import convert_main
from tracking.trees import path_names

# (collection, Flax leaf) -> PyTorch leaf.
_LEAF_NAMES = {
    ('params', 'kernel'): 'weight',
    ('params', 'bias'): 'bias',
    ('params', 'scale'): 'weight',
    ('params', 'cls_weight'): 'cls_weight',
    ('params', 'loc_weight'): 'loc_weight',
    ('params', 'gamma'): 'gamma',                  # SiamAttn DSA gains (1,)
    ('params', 'transpose_kernel'): 'weight',      # ConvTranspose2d (I, O, kh, kw)
    ('batch_stats', 'mean'): 'running_mean',
    ('batch_stats', 'var'): 'running_var',
}
_IGNORED_SUFFIX = '.num_batches_tracked'


def torch_key(path: tuple[str, ...]) -> str:
    """('params', 'backbone', 'layer2_0', 'downsample_0', 'kernel') ->
    'backbone.layer2.0.downsample.0.weight'."""
    collection, *modules, leaf = path
    try:
        torch_leaf = _LEAF_NAMES[(collection, leaf)]
    except KeyError:
        raise ValueError(f'no PyTorch name for Flax variable {"/".join(path)}') from None
    names = [re.sub(r'_(\d+)$', r'.\1', name) for name in modules]
    return '.'.join(names + [torch_leaf])


def _model_section(config):
    """The `model` section of a full config, or the section itself."""
    if config is None:
        return None
    return config.model if 'model' in config else config


def backbone_layout(config) -> str:
    """The backbone's PyTorch key layout: `alexnetlegacy` (`backbone.features.N.*`) or
    `modules` (the mechanical mapping of the Flax names, e.g. `backbone.layer1.0.*`)."""
    model_config = _model_section(config)
    if model_config is not None and model_config.backbone.name == 'alexnetlegacy':
        return 'alexnetlegacy'
    return 'modules'


def _legacy_alexnet_key(key: str) -> str:
    """'backbone.layer2.1.running_var' -> 'backbone.features.5.running_var'."""
    match = re.fullmatch(r'backbone\.layer(\d)\.(\d)\.(\w+)', key)
    if not match or (int(match[1]), int(match[2])) not in LEGACY_INDEX:
        raise ValueError(f'{key!r} is not an AlexNet backbone key')
    index = LEGACY_INDEX[(int(match[1]), int(match[2]))]
    return f'backbone.features.{index}.{match[3]}'


def official_key(path: tuple[str, ...], config=None) -> str:
    """torch_key, then the backbone key layout the config selects (see backbone_layout)."""
    key = torch_key(path)
    if key.startswith('backbone.') and backbone_layout(config) == 'alexnetlegacy':
        key = _legacy_alexnet_key(key)
    return key


def _layout_hint(keys, config) -> str:
    """A sentence naming the right backbone name when an AlexNet checkpoint has the other
    layout than the config selects; '' otherwise."""
    model_config = _model_section(config)
    name = model_config.backbone.name
    legacy = any(k.startswith('backbone.features.') for k in keys)
    modular = any(k.startswith('backbone.layer') for k in keys)
    if name == 'alexnetlegacy' and modular and not legacy:
        return (' The checkpoint has the `alexnet` key layout (backbone.layer1.0.*) but '
                'model.backbone.name is \'alexnetlegacy\' (backbone.features.N.*): set '
                'model.backbone.name=alexnet.')
    if name == 'alexnet' and legacy and not modular:
        return (' The checkpoint has the `alexnetlegacy` key layout (backbone.features.N.*) but '
                'model.backbone.name is \'alexnet\' (backbone.layer1.0.*): set '
                'model.backbone.name=alexnetlegacy.')
    return ''


def to_numpy(value) -> np.ndarray:
    """A numpy array from a numpy array or a torch tensor (without importing torch)."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _to_flax_layout(key: str, value: np.ndarray, leaf: str, ndim: int) -> np.ndarray:
    """ndim: the Flax variable's rank (4: conv kernel, 2: Dense kernel)."""
    if leaf == 'kernel' and ndim == 2:
        if value.ndim != 2:
            raise ValueError(f'state_dict[{key!r}]: expected a 2-D linear weight (O, I), '
                             f'got shape {value.shape}')
        return np.transpose(value)
    if leaf in ('kernel', 'transpose_kernel'):
        if value.ndim != 4:
            raise ValueError(f'state_dict[{key!r}]: expected a 4-D conv weight '
                             f'({"I, O" if leaf == "transpose_kernel" else "O, I"}, kh, kw), '
                             f'got shape {value.shape}')
        return np.transpose(value, (2, 3, 0, 1) if leaf == 'transpose_kernel' else (2, 3, 1, 0))
    return value


def _to_torch_layout(value: np.ndarray, leaf: str) -> np.ndarray:
    """The inverse of _to_flax_layout."""
    if leaf == 'kernel' and value.ndim == 2:
        return np.transpose(value)
    if leaf == 'kernel':
        return np.transpose(value, (3, 2, 0, 1))
    if leaf == 'transpose_kernel':
        return np.transpose(value, (2, 3, 0, 1))
    return value


def _variable_shapes(model_config):
    """The Flax variable tree of the configured model: SiamAttn when model.arch is
    'siamattn' (configs/siamattn.py), SiamRPN++ otherwise."""
    from siam import siamattn
    if siamattn.is_siamattn(model_config):
        return siamattn.variable_shapes(model_config)
    return variable_shapes(model_config)


def from_official(state_dict, config) -> dict:
    """Flax variables {'params', 'batch_stats'} from a pysot ModelBuilder state_dict.

    state_dict: mapping key -> numpy array or torch tensor (e.g. torch.load(model.pth)).
    config: the full config (with `.model`) or its `model` section.
    Raises ValueError naming every missing key, unexpected key, or shape mismatch.
    """
    model_config = _model_section(config)
    shapes = _variable_shapes(model_config)
    available = {k: v for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIX)}
    missing, mismatched, used = [], [], set()
    leaves = []
    for key_path, spec in jax.tree_util.tree_flatten_with_path(shapes)[0]:
        path = path_names(key_path)
        key = official_key(path, model_config)
        if key not in available:
            missing.append(key)
            leaves.append(None)
            continue
        used.add(key)
        value = to_numpy(available[key])
        try:
            value = _to_flax_layout(key, value, path[-1], len(spec.shape))
        except ValueError as error:
            mismatched.append(str(error))
            leaves.append(None)
            continue
        if value.shape != tuple(spec.shape):
            mismatched.append(f'{key}: checkpoint {to_numpy(available[key]).shape} -> '
                              f'{value.shape} in Flax layout, model expects {tuple(spec.shape)}')
        leaves.append(value.astype(spec.dtype))
    unexpected = sorted(set(available) - used)
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing key(s): {missing}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected key(s): {unexpected}')
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatch(es): {mismatched}')
    if problems:
        raise ValueError('siam.convert.from_official: state_dict does not fit the model config '
                         f'(backbone {model_config.backbone.name!r}); ' + '; '.join(problems)
                         + _layout_hint(available, model_config))
    treedef = jax.tree_util.tree_structure(shapes)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def to_official(variables, config=None) -> dict:
    """The inverse of `from_official`: Flax variables -> {pysot key: np.ndarray} (NCHW kernels,
    without `num_batches_tracked`). config (full or `model` section) selects the backbone key
    layout (alexnetlegacy: `backbone.features.N.*`); without it the Flax names map
    mechanically (`backbone.layer1.0.*`)."""
    state_dict = {}
    for key_path, value in jax.tree_util.tree_flatten_with_path(variables)[0]:
        path = path_names(key_path)
        state_dict[official_key(path, config)] = _to_torch_layout(np.asarray(value), path[-1])
    return state_dict


def main(argv=None) -> None:
    """python -m siam.convert IN.pth OUT_DIR --config configs/siamrpn.py:r50_l234"""
    convert_main(argv, 'Convert a pysot SiamRPN++ or SiamAttn model.pth to an orbax checkpoint '
                 '(the config says which model).',
                 'configs/siamrpn.py:r50_l234', from_official)


if __name__ == '__main__':
    main()
