"""Evaluation benchmarks on disk -> `list[Sequence]`.

`load_benchmark(name, root, sequences=None, split=None)` dispatches to one reader module per
benchmark (otb, lasot, lasot_ext, got10k, trackingnet, uav123, nfs, tnl2k, vot in this package;
synthetic from
tracking.data.synthetic). Frames are kept as paths and read lazily by `Sequence.frame(i)` (tracking.images.load_image); nothing is copied or decoded here.

Boxes are kept exactly as the annotation files write them: `boxes` [T, 4] float64 (x, y, w, h)
in pixels (OTB/UAV/LaSOT 1-based pixels are not shifted). Rows without an annotation (withheld
test ground truth) are NaN. `visible` [T] bool comes from the benchmark's absence labels; it is
None where the benchmark has none (OTB, VOT, test splits).

Ground-truth checks (ValueError naming the file and the 1-based line number):
  * a line that does not hold the expected number of values, or a value that is not a number;
  * the first box is NaN or has zero/negative width or height;
  * NaN in a frame where the target should be visible (NaN is legitimate only where the
    benchmark marks the frame absent, e.g. UAV123 NaN lines -> visible False).
A missing root, sequence folder or annotation file raises FileNotFoundError naming the path.
`load_benchmark` reads every sequence up front, so the first bad file stops it;
`benchmark_entries` (same arguments) only lists `(name, loader)` pairs, and each loader raises for
its own sequence (tracking.eval.runner loads them one at a time and reports the failures).

The per-sequence readers (`read_lasot_sequence`, `read_got10k_sequence`,
`read_trackingnet_sequence`) and the annotation helpers are shared with `tracking.data.datasets`.
"""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Callable, Sequence as Seq

from tracking.data.benchmarks.annotations import (IMAGE_SUFFIXES, check_boxes, read_flags,
                                                  read_number_rows, require_dir, require_file,
                                                  usable_boxes)
from tracking.data.benchmarks.got10k import (_got10k_entries, got10k_sequence_names,
                                             got10k_split_dir, read_got10k_sequence,
                                             read_meta_info)
from tracking.data.benchmarks.lasot import (LASOT_TEST_SEQUENCES, _lasot_entries,
                                            lasot_names_on_disk, lasot_sequence_dir,
                                            lasot_test_names, read_lasot_sequence)
from tracking.data.benchmarks.lasot_ext import (LASOT_EXT_SEQUENCES, _lasot_ext_entries,
                                                read_lasot_ext_sequence)
from tracking.data.benchmarks.nfs import _nfs_entries, read_nfs_annotation, read_nfs_sequence
from tracking.data.benchmarks.otb import OTB_FRAME_RANGES, _otb_entries, read_otb_sequence
from tracking.data.benchmarks.trackingnet import (_trackingnet_entries, read_trackingnet_sequence,
                                                  trackingnet_names)
from tracking.data.benchmarks.uav123 import (UAV123_SPLIT_RANGES, _uav123_entries,
                                             read_uav123_sequence)
from tracking.data.benchmarks.tnl2k import _tnl2k_entries, read_tnl2k_sequence
from tracking.data.benchmarks.vot import _vot_entries, read_vot_regions, read_vot_sequence
from tracking.data.sequence import Sequence

# --------------------------------------------------------------------------------------------
# Sequence selection.

Loader = Callable[[], Sequence]


def _select(entries: list[tuple[str, Loader]], names: Seq[str] | None,
            benchmark: str) -> list[tuple[str, Loader]]:
    """The entries named in `names` (in that order; all if None). KeyError for unknown names."""
    if names is None:
        return list(entries)
    if isinstance(names, str):
        names = [names]
    by_name = dict(entries)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f'{benchmark}: unknown sequence(s) {missing}; available: '
                       f'{sorted(by_name)[:10]}{"..." if len(by_name) > 10 else ""}')
    return [(n, by_name[n]) for n in names]


# --------------------------------------------------------------------------------------------
# Synthetic (tracking.data.synthetic, another module) and dispatch.

def _synthetic_entries(root: Path | None, split: str | None) -> list[tuple[str, Loader]]:
    """The TFDS synthetic set: tracking.data.synthetic.load_synthetic(split, data_dir=root)."""
    module = importlib.import_module('tracking.data.synthetic')
    loaded = module.load_synthetic(split or 'test', data_dir=None if root is None else str(root))
    return [(s.name, lambda s=s: s) for s in loaded]


_READERS = {
    'otb': _otb_entries,
    'lasot': _lasot_entries,
    'got10k': _got10k_entries,
    'trackingnet': _trackingnet_entries,
    'uav123': _uav123_entries,
    'nfs': _nfs_entries,
    'lasot_ext': _lasot_ext_entries,
    'tnl2k': _tnl2k_entries,
    'vot': _vot_entries,
    'synthetic': _synthetic_entries,
}
BENCHMARKS = tuple(_READERS)


def load_benchmark(name: str, root: str | os.PathLike | None, sequences: Seq[str] | None = None,
                   split: str | None = None) -> list[Sequence]:
    """Reads benchmark `name` from `root`.

    name: one of BENCHMARKS (case-insensitive; 'otb100', 'otb2015', 'got-10k', 'uav', 'nfs30',
      'vot2016'/'vot2018', 'lasotext'/'lasot-ext' are accepted aliases).
    sequences: names to load, in that order (KeyError for unknown ones); None loads all.
    split: lasot and lasot_ext 'test' (default) or 'all'; got10k 'val' (default) or 'test'; trackingnet 'test'
      (default) or a chunk name; synthetic the TFDS split (default 'test').
    Returns: list of Sequence with frames as paths (read lazily).
    Raises: ValueError listing the known names for an unknown benchmark; FileNotFoundError
      naming the root or the missing annotation file; ValueError for bad ground truth.
    """
    return [load() for _, load in benchmark_entries(name, root, sequences, split)]


def benchmark_entries(name: str, root: str | os.PathLike | None,
                      sequences: Seq[str] | None = None,
                      split: str | None = None) -> list[tuple[str, Loader]]:
    """The lazy form of `load_benchmark`: [(sequence name, loader)] where loader() -> Sequence.

    Only the folder listing is read here; each loader reads and checks its own annotation files
    when called, so one bad sequence raises (ValueError / FileNotFoundError naming the file and
    line) only for itself (tracking.eval.runner loads entries inside its per-sequence failure
    handling). Arguments and the errors raised here (unknown benchmark, missing root, unknown
    sequence names) are those of `load_benchmark`.
    """
    key = canonical_benchmark(name)
    if key != 'synthetic':
        root = require_dir(root, f'{key} benchmark root')
    return _select(_READERS[key](root, split), sequences, key)


_ALIASES = {'otb100': 'otb', 'otb2015': 'otb', 'uav': 'uav123', 'nfs30': 'nfs',
            'lasotext': 'lasot_ext', 'lasotextension': 'lasot_ext'}


def canonical_benchmark(name: str) -> str:
    """The benchmark's name as used everywhere here: 'OTB2015' -> 'otb', 'GOT-10k' -> 'got10k',
    'vot2018' -> 'vot'. Raises ValueError listing the known benchmarks for an unknown name."""
    key = name.lower().replace('-', '').replace('_', '')
    key = 'vot' if re.fullmatch(r'vot20\d\d', key) else _ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise ValueError(f'unknown benchmark {name!r}; known benchmarks: {", ".join(BENCHMARKS)}')
    return key


__all__ = ['BENCHMARKS', 'LASOT_TEST_SEQUENCES', 'OTB_FRAME_RANGES', 'UAV123_SPLIT_RANGES',
           'canonical_benchmark',
           'load_benchmark', 'benchmark_entries', 'check_boxes', 'read_number_rows', 'read_flags',
           'read_otb_sequence', 'read_lasot_sequence', 'read_got10k_sequence',
           'read_trackingnet_sequence', 'read_uav123_sequence', 'read_nfs_sequence',
           'read_lasot_ext_sequence', 'read_tnl2k_sequence', 'LASOT_EXT_SEQUENCES',
           'read_vot_sequence', 'read_vot_regions', 'read_meta_info', 'read_nfs_annotation',
           'require_dir', 'require_file', 'usable_boxes', 'IMAGE_SUFFIXES',
           'got10k_sequence_names', 'got10k_split_dir', 'lasot_names_on_disk', 'lasot_sequence_dir',
           'lasot_test_names', 'trackingnet_names']

