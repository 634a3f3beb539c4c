"""Loading `configs/<tracker>.py:<variant>` files outside of absl flags (tests, converters, demo).

`train.py` and `eval.py` use `ml_collections.config_flags` for the same files, so the command
line `--config configs/grm.py:tiny --config.train.lr=1e-3` and
`load_config('configs/grm.py:tiny', ['train.lr=1e-3'])` give the same ConfigDict.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import sys
from typing import Iterable, NoReturn, Sequence

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


USAGE_ERROR_STATUS = 2  # Exit status of a command-line / config error (as argparse uses).


def usage_error(program: str, message: str) -> NoReturn:
    """Prints `<program>: error: <message>` as ONE line on stderr and exits with status 2."""
    one_line = ' '.join(str(message).split())
    print(f'{os.path.basename(program)}: error: {one_line}', file=sys.stderr, flush=True)
    sys.exit(USAGE_ERROR_STATUS)


def parse_flags_or_exit(argv: Sequence[str]) -> list[str]:
    """absl flag parsing for train.py / eval.py (`app.run(main, flags_parser=...)`).

    Every problem with the command line becomes a one-line `usage_error` (status 2, no
    traceback): a misspelt or unknown flag, a missing required flag, a flag value of the wrong
    type (`--config.train.num_steps=abc`), an override of a config key that does not exist
    (named, with the argument), and a config file that is missing or raises while building the
    config (an unknown variant, say). Returns the remaining arguments.
    """
    from absl import flags
    program = argv[0] if argv else 'main'
    try:
        remaining = flags.FLAGS(list(argv))
    except flags.Error as error:
        usage_error(program, f'{_last_line_of_traceback(str(error))} (see --helpfull)')
    except (KeyError, AttributeError) as error:
        unknown = None
        try:
            unknown = unknown_config_override(argv)
        except Exception:  # pylint: disable=broad-except; the original error is reported.
            pass
        if unknown is not None:
            key, arg = unknown
            usage_error(program, f'unknown config key {key!r} (from {arg}); no such field in '
                                 'the config file')
        usage_error(program, f'bad config: {type(error).__name__}: {error}')
    except (OSError, ValueError, TypeError, SyntaxError, ImportError) as error:
        usage_error(program, f'cannot build the config: {type(error).__name__}: {error}')
    for name in list(flags.FLAGS):
        value = flags.FLAGS[name].value
        if type(value).__name__ == '_ErrorConfig':  # config_flags defers a failed file load.
            try:
                getattr(value, 'tracker')
            except Exception as error:  # pylint: disable=broad-except; reported in one line.
                usage_error(program, f'--{name}: cannot load the config file: '
                                     f'{_last_line_of_traceback(str(error))}')
    return remaining


def _last_line_of_traceback(text: str) -> str:
    """`text` itself, or, when it embeds a traceback, its prefix before it and its last line."""
    if 'Traceback' not in text and '\n' not in text:
        return text
    head = text.split('Traceback')[0].strip()
    last = [line.strip() for line in text.splitlines() if line.strip()][-1]
    return f'{head} {last}' if head and last not in head else (head or last)


def unknown_config_override(argv: Sequence[str]) -> tuple[str, str] | None:
    """(dotted key, argument) of the first --config.<key> override the config (built from the
    --config file in argv) lacks, or None."""
    spec, overrides = None, []
    for i, arg in enumerate(argv[1:], start=1):
        if arg == '--config' and i + 1 < len(argv):
            spec = argv[i + 1]
        elif arg.startswith('--config='):
            spec = arg.split('=', 1)[1]
        elif arg.startswith('--config.'):
            overrides.append((arg[len('--config.'):].split('=', 1)[0], arg))
    if spec is None:
        return None
    config = load_config(spec)
    for key, arg in overrides:
        node = config
        for part in key.split('.'):
            if not hasattr(node, 'keys') or part not in node:
                return key, arg
            node = node[part]
    return None


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
