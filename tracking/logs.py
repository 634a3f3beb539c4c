"""Quiet, readable console output for the entry points, and the one progress-bar helper.

`quiet()` is called at the top of every entry point (train.py, eval.py, demo.py, track.py),
before TensorFlow, JAX or orbax are imported. It silences the libraries' chatter only:

* TensorFlow's C++ logs (TF_CPP_MIN_LOG_LEVEL=2 unless the user set it) and its Python
  'WARNING:tensorflow' messages (the 'tensorflow' logger at ERROR);
* DeprecationWarning / PendingDeprecationWarning / FutureWarning raised in third-party modules
  (the same warnings raised in tracking, grm_jax or siam still show);
* INFO/DEBUG log records of third-party libraries: orbax (dozens of lines per checkpoint),
  tensorflow_datasets and others that log through absl (records from files under
  site-packages / dist-packages), and the 'jax' / 'orbax' loggers (absl's app.run sets the root
  logger to INFO), and their logged deprecation notices (e.g. tensorflow_datasets'
  '`FeatureConnector.dtype` is deprecated', a WARNING record). Their other warnings and errors
  still show, and so do this project's INFO logs;
* orbax's WARNING records too: they describe options our checkpoint code sets on purpose
  ('CheckpointManagerOptions.read_only=True, setting create=False', 'Given directory is read
  only', 'Waiting for previous save to complete took 1.2 seconds'). Orbax errors still show.

Every other warning and log record, in particular warnings from this project's code, is untouched.

`progress(...)` is the only way this code base makes a tqdm bar: a live bar on a terminal; when
stderr is not a terminal (a pipe, a log file, CI) no live updates are written and a bar that is
kept (`leave=True`) prints one summary line when it closes, so logs are not flooded.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from typing import Any, Iterable

import tqdm

# Modules whose warnings are ours: never silenced.
OUR_MODULES = r'(tracking|grm_jax|siam|roam|__main__)(\..*)?$'
_LIBRARY_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


_LIBRARY_DIRS = ('/site-packages/', '/dist-packages/')
_CHATTY_LOGGERS = ('jax', 'orbax', 'tensorflow_datasets')


class _DropLibraryInfo(logging.Filter):
    """Drops records below WARNING, and orbax's and deprecation notices below ERROR, emitted
    from installed libraries' source files (absl logging routes every library's records through the one 'absl'
    logger, so the logger name does not tell whose they are; the file does)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        path = record.pathname.replace('\\', '/')
        if not any(part in path for part in _LIBRARY_DIRS):
            return True
        if record.levelno < logging.WARNING or '/orbax/' in path:
            return False
        try:
            message = record.getMessage()
        except Exception:  # pylint: disable=broad-except; a malformed record is not ours to fix
            return True
        return 'deprecat' not in message.lower()


_FILTER = _DropLibraryInfo()


def quiet() -> None:
    """Silences TensorFlow, third-party deprecation warnings and orbax INFO logs (see module doc).

    Idempotent; call it before importing TensorFlow (it sets TF_CPP_MIN_LOG_LEVEL, which TF reads
    once at import).
    """
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # 2: C++ INFO and WARNING off, errors on
    for category in _LIBRARY_WARNINGS:
        warnings.filterwarnings('ignore', category=category)
        # Inserted after (so in front of) the 'ignore': our own modules' warnings still show.
        warnings.filterwarnings('default', category=category, module=OUR_MODULES)
    logging.getLogger('tensorflow').setLevel(logging.ERROR)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR if name == 'orbax' else logging.WARNING)
    absl_logger = logging.getLogger('absl')
    if _FILTER not in absl_logger.filters:
        absl_logger.addFilter(_FILTER)


def is_terminal(stream=None) -> bool:
    """True when `stream` (default sys.stderr, where tqdm writes) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LogProgress:
    """The non-terminal stand-in for a tqdm bar: counts like tqdm (iteration, `update`,
    `set_postfix`, `close`, context manager) and writes one line on `close` when `leave`:
    '<desc>: <n>/<total> <unit> in <seconds>s [k=v, ...]'."""

    def __init__(self, iterable: Iterable | None = None, desc: str | None = None,
                 total: int | None = None, unit: str = 'it', leave: bool = True,
                 initial: int = 0, file=None):
        self.iterable = iterable
        self.desc = desc
        if total is None and iterable is not None and hasattr(iterable, '__len__'):
            total = len(iterable)
        self.total = total
        self.unit = unit
        self.leave = leave
        self.n = initial
        self._initial = initial
        self._file = file
        self._postfix: dict[str, Any] = {}
        self._start = time.perf_counter()
        self._closed = False

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total if self.total is not None else len(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        del refresh
        self._postfix = dict(ordered_dict or {}, **kwargs)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        del refresh
        self.desc = desc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.leave:
            return
        elapsed = time.perf_counter() - self._start
        count = f'{self.n}/{self.total}' if self.total is not None else f'{self.n}'
        line = f'{count} {self.unit} in {elapsed:.1f}s'
        if self.desc:
            line = f'{self.desc}: {line}'
        if self._postfix:
            line += ' [' + ', '.join(f'{k}={v}' for k, v in self._postfix.items()) + ']'
        file = self._file if self._file is not None else sys.stderr
        print(line, file=file, flush=True)


def progress(iterable: Iterable | None = None, *, desc: str | None = None,
             total: int | None = None, unit: str = 'it', leave: bool = True, initial: int = 0,
             enabled: bool = True, file=None):
    """A progress bar over `iterable` (or a manual one with `total` and `update`).

    enabled=False: a disabled tqdm (no output). On a terminal (`file`, default sys.stderr):
    tqdm.tqdm with these arguments. Otherwise: `LogProgress`, i.e. one line at close when
    `leave`, nothing while running.
    """
    if not enabled:
        return tqdm.tqdm(iterable, total=total, disable=True)
    if is_terminal(file):
        return tqdm.tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave,
                         initial=initial, dynamic_ncols=True, file=file)
    return LogProgress(iterable, desc=desc, total=total, unit=unit, leave=leave,
                       initial=initial, file=file)
