"""Reading PyTorch checkpoint files (`torch.save`) without PyTorch.

Official checkpoints (GRM `.pth.tar`, pysot `model.pth`, MAE `.pth`) are pickles whose tensors
live in a zip archive (PyTorch >= 1.6) or, for old files, inline after the pickle. This module
reads the zip format into numpy arrays so that converting a checkpoint never needs torch installed.
Classes of the training code that the pickle names (settings objects, optimizers' helpers) are
replaced by inert placeholders, so a file saved with the official repository on its path still
loads.
"""
from __future__ import annotations

import builtins
import collections
import os
import pickle
import zipfile

import numpy as np

# PyTorch storage class names -> numpy dtypes.
_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': None, 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}
# torch dtype names (as in `torch.float32`) used by newer files' typed storages.
_TORCH_DTYPES = {
    'float32': np.float32, 'float': np.float32, 'float64': np.float64, 'double': np.float64,
    'float16': np.float16, 'half': np.float16, 'int64': np.int64, 'long': np.int64,
    'int32': np.int32, 'int': np.int32, 'int16': np.int16, 'int8': np.int8, 'uint8': np.uint8,
    'bool': np.bool_, 'bfloat16': None,
}


class _Placeholder:
    """Stands in for any class the checkpoint pickles that is not a tensor or a container."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):
        return _Placeholder(*args)


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """Rebuilds a tensor view (offset, size, stride in elements) of a flat storage array."""
    size = tuple(size)
    if not size:
        return storage[offset].copy()
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(s * itemsize for s in stride))
    return np.array(view)  # copy: contiguous and independent of the storage


def _rebuild_parameter(data, *unused):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._path = path
        self._storages = {}

    def find_class(self, module, name):
        if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
            return _rebuild_tensor
        if module == 'torch._utils' and name == '_rebuild_parameter':
            return _rebuild_parameter
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == 'torch' and name in _TORCH_DTYPES:
            return _StorageType(_TORCH_DTYPES[name])
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        if module == 'builtins' and name in ('dict', 'list', 'tuple', 'set', 'slice', 'object'):
            return getattr(builtins, name)
        if module.startswith('numpy') or module == '_codecs':
            return super().find_class(module, name)
        return _Placeholder

    def persistent_load(self, pid):
        # pid = ('storage', storage_type, key, location, numel)
        kind, storage_type, key, _location, _numel = pid
        if kind != 'storage':
            raise pickle.UnpicklingError(f'{self._path}: unknown persistent id {pid!r}')
        if key not in self._storages:
            dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else None
            if dtype is None:
                raise ValueError(f'{self._path}: unsupported tensor storage {storage_type!r} '
                                 '(bfloat16 checkpoints must be converted to float32 first)')
            raw = self._archive.read(f'{self._prefix}data/{key}')
            self._storages[key] = np.frombuffer(raw, dtype=dtype)
        return self._storages[key]


def load_torch_file(path: str | os.PathLike):
    """Loads a `torch.save` zip file; tensors become numpy arrays.

    Returns the unpickled object (usually a dict; a GRM `.pth.tar` holds the weights under 'net').
    Raises FileNotFoundError for a missing file and ValueError for a file that is not a
    PyTorch zip checkpoint (e.g. the legacy pre-1.6 format).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    if not zipfile.is_zipfile(path):
        raise ValueError(f'{path}: not a PyTorch zip checkpoint (saved by torch < 1.6?); '
                         're-save it with a recent torch: torch.save(torch.load(f), f)')
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith('data.pkl')]
        if not pickles:
            raise ValueError(f'{path}: zip archive has no data.pkl; not a PyTorch checkpoint')
        prefix = pickles[0][:-len('data.pkl')]
        with archive.open(pickles[0]) as f:
            return _Unpickler(f, archive, prefix, path).load()


def state_dict_from_file(path: str | os.PathLike, key: str | None = None) -> dict:
    """Returns the flat {name: np.ndarray} weights of a checkpoint file.

    key: the entry holding the weights ('net' for GRM trainer files, 'model' for MAE); with None,
    the first of 'net', 'model', 'state_dict' present is used, else the top-level dict itself.
    """
    obj = load_torch_file(path)
    if not isinstance(obj, dict):
        raise ValueError(f'{path}: expected a dict at the top level, got {type(obj).__name__}')
    if key is None:
        key = next((k for k in ('net', 'model', 'state_dict') if k in obj), None)
    if key is not None:
        if key not in obj:
            raise KeyError(f'{path}: no {key!r} entry; top-level keys: {sorted(obj)}')
        obj = obj[key]
    weights = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not weights:
        raise ValueError(f'{path}: no tensors found under {key!r}')
    return weights


def load_weights(path: str | os.PathLike, key: str | None = None) -> dict:
    """{name: np.ndarray} of an official checkpoint, without needing PyTorch.

    path: a `.npz` of name -> array, or a `torch.save` file. Zip-format files (torch >= 1.6) are
    read by this module; legacy files (pysot's released weights were saved by torch 0.4.1) go
    through torch.load if torch happens to be installed, else a ValueError says how to convert.
    key: as in `state_dict_from_file`. A 'module.' prefix (DataParallel) is stripped.
    """
    path = os.fspath(path)
    if path.endswith('.npz'):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'checkpoint file not found: {path}')
        with np.load(path) as data:
            weights = {k: data[k] for k in data.files}
    else:
        try:
            weights = state_dict_from_file(path, key)
        except ValueError as error:
            if not zipfile.is_zipfile(path) and os.path.isfile(path):
                weights = _legacy_torch_weights(path, key, error)
            else:
                raise
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in weights.items()}


def _legacy_torch_weights(path: str, key: str | None, error: Exception) -> dict:
    try:
        import torch  # Optional, only for pre-1.6 files.
    except ImportError:
        raise ValueError(f'{error}; or install torch (CPU) to read legacy files') from None
    obj = torch.load(path, map_location='cpu', weights_only=False)
    if isinstance(obj, dict):
        key = key or next((k for k in ('net', 'model', 'state_dict') if k in obj), None)
        obj = obj[key] if key else obj
    return {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, 'detach')}
