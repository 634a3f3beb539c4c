"""Loading `configs/<tracker>.py:<variant>` files outside of absl flags (tests, converters, demo).

`train.py` and `eval.py` use `ml_collections.config_flags` for the same files, so the command
line `--config configs/grm.py:tiny --config.train.lr=1e-3` and
`load_config('configs/grm.py:tiny', ['train.lr=1e-3'])` give the same ConfigDict.
"""
from __future__ import annotations

import ast
import importlib.util
import os
from typing import Iterable

import ml_collections


def load_config(spec: str, overrides: Iterable[str] = ()) -> ml_collections.ConfigDict:
    """Builds a config from 'path/to/file.py[:arg]' and applies 'a.b=value' overrides.

    Raises FileNotFoundError for a missing file and KeyError naming the key (and the file) for an
    override of a field that does not exist.
    """
    path, _, arg = spec.partition(':')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    module_name = '_config_' + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
    for item in overrides:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'config override {item!r} must look like key=value')
        set_field(config, key.strip(), _parse_value(value.strip()), where=path)
    return config


def set_field(config: ml_collections.ConfigDict, dotted_key: str, value, where: str = 'config'):
    """Sets config.<dotted_key> = value, raising KeyError if any part of the key is unknown."""
    *parents, leaf = dotted_key.split('.')
    node = config
    for i, part in enumerate(parents):
        if part not in node:
            raise KeyError(f'unknown config key {".".join(parents[:i + 1])!r} in {where}')
        node = node[part]
    if leaf not in node:
        raise KeyError(f'unknown config key {dotted_key!r} in {where}; '
                       f'known keys here: {sorted(node.keys())}')
    current = node[leaf]
    if isinstance(current, tuple) and isinstance(value, str):
        value = tuple(v for v in value.split(',') if v)
    elif isinstance(current, float) and isinstance(value, int):
        value = float(value)
    node[leaf] = value


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
