"""Plain-text result tables and a JSON dump of per-sequence and summary metrics."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from tracking.eval.results import atomic_write_text

# (column title, summary key) per benchmark family; the first column ranks the rows.
_OPE_COLUMNS = (('AUC', 'auc'), ('P@20', 'precision'), ('NormP@0.2', 'norm_precision'))
_GOT10K_COLUMNS = (('AO', 'ao'), ('SR0.5', 'sr50'), ('SR0.75', 'sr75'))
_TRACKINGNET_COLUMNS = (('Success', 'auc'), ('Precision', 'precision'),
                        ('NormPrec', 'norm_precision'))
# VOT supervised protocol (PySOT's table): R = failures per 100 frames, Lost = total failures.
_VOT_COLUMNS = (('EAO', 'eao'), ('A', 'accuracy'), ('R', 'robustness'), ('Lost', 'lost_number'))


def _columns(benchmark: str):
    key = benchmark.lower().replace('-', '').replace('_', '')
    if re.fullmatch(r'vot(20\d\d)?', key):
        return _VOT_COLUMNS
    if key == 'got10k':
        return _GOT10K_COLUMNS
    if key == 'trackingnet':
        return _TRACKINGNET_COLUMNS
    return _OPE_COLUMNS


def format_table(summaries: Mapping[str, Mapping], benchmark: str) -> str:
    """Aligned text table, one row per tracker, best first; values are fractions (3 decimals).

    OPE benchmarks: AUC / P@20 / NormP@0.2; GOT-10k: AO / SR0.5 / SR0.75; TrackingNet: the
    devkit's Success / Precision / NormPrec areas; VOT (vot, vot2016 ... vot2019, not vot-ope):
    EAO / A / R (failures per 100 frames) / Lost (total failures). A trailing '#seq' column
    gives the number of sequences when the summaries carry it.
    """
    columns = _columns(benchmark)
    rank_key = columns[0][1]
    rows = sorted(summaries.items(),
                  key=lambda item: _sort_value(item[1].get(rank_key)), reverse=True)
    header = ['Tracker'] + [title for title, _ in columns] + ['#seq']
    body = [[name] + [_fmt(s.get(key)) for _, key in columns]
            + [str(s.get('num_sequences', ''))] for name, s in rows]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return '  '.join([first] + rest).rstrip()

    rule = '-' * len(line(header))
    return '\n'.join([f'{benchmark}', line(header), rule] + [line(r) for r in body]) + '\n'


def _sort_value(value) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return -math.inf
    return float(value)


def _fmt(value) -> str:
    if value is None:
        return '-'
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    value = float(value)
    return 'nan' if math.isnan(value) else f'{value:.3f}'


def to_jsonable(obj):
    """numpy arrays / scalars -> lists / floats; NaN and inf -> None (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def write_metrics_json(path, per_sequence: Mapping, summaries: Mapping) -> Path:
    """Writes {'summaries': ..., 'per_sequence': ...} as strict JSON (atomically); returns path.

    per_sequence: {tracker: {sequence: metrics dict}} (or {sequence: metrics dict});
    summaries: {tracker: summary dict}. Arrays become lists, NaN becomes null.
    """
    path = Path(path)
    payload = {'summaries': to_jsonable(summaries), 'per_sequence': to_jsonable(per_sequence)}
    atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=False))
    return path
