"""Small helpers for PyTrees of variables."""
from __future__ import annotations


def key_name(key) -> str:
    """The plain name of one jax tree path entry (DictKey, GetAttrKey, SequenceKey)."""
    for attr in ('key', 'name', 'idx'):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def path_names(key_path) -> tuple[str, ...]:
    """A jax key path as a tuple of names, e.g. ('params', 'backbone', 'conv1', 'kernel')."""
    return tuple(key_name(k) for k in key_path)
