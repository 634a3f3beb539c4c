"""VOT scores: accuracy, robustness and EAO (PySOT's conventions), from result records.

-------
* Accuracy: per-frame raster overlaps with bounds (W, H); codes give NaN; after every code 1
  the frame itself and the next 9 frames (burn-in 10) are ignored. A = nanmean over all frames of
  all sequences pooled (not a mean of per-sequence means).
* Robustness (PySOT's, the number in published VOT tables): R = 100 * failures / frames,
  summed over all sequences ("failures per 100 frames"; e.g. SiamRPN++ 0.234 on VOT2018 is
  0.234 failures per 100 frames, printed as is). Lost number = total failures.
  Also given: vot-toolkit-style reliability exp(-30 * failures / frames) on the pooled counts
  (sensitivity 30, as the vot-toolkit AR analysis; its per-sequence weighting is not reproduced).
* EAO (`expected_overlap_curve`, `eao`): overlaps with bounds (W - 1, H - 1) and no burn-in. Each
  sequence is split into segments starting at frame 0 and at failure + 5; a segment that ends in a
  failure is padded with zeros to the longest sequence length, the last segment with NaN (it
  is not observed beyond the sequence end); NaN overlaps inside a segment count as 0 (the init
  code at index 0 never counts). Curve[L] = weighted mean, over the segments observed at index L,
  of the mean of their overlaps 1..L; curve[0] = 1. EAO = mean of the curve over the interval.
  PySOT quirks kept: a failure within the last 4 frames starts no segment (its segment is the
  last one and is NaN-padded); a segment that ends exactly at the sequence end gets weight
  (T - p) / (T - p + 1); a sequence without failure keeps NaN overlaps unzeroed.
* Interval convention: PySOT averages curve[low - 1 .. high - 1] (0-based, inclusive), i.e. it
  treats the interval as 1-based lengths; vot-toolkit's `EAOScore` averages curve[low .. high].
  `eao(..., convention='vot-toolkit')` gives the latter. The curve itself is PySOT's in both.
  Intervals: VOT2016 [108, 371], VOT2017/2018 [100, 356], VOT2019 [46, 291].

Result files
------------
`<out_dir>/<tracker>/baseline/<seq>/<seq>_001.txt`, one line per frame: the integer code, or the
box as comma-separated `%.4f` values (of the value as a C float, like PySOT's `vot_float2str`),
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence as Seq

import numpy as np

from tracking.eval.region import CODE_INIT, CODE_SKIP, is_code, region_overlap
from tracking.eval.vot_protocol import SKIP_INITIALIZE

BURNIN = 10
RELIABILITY_SENSITIVITY = 30.0
EAO_INTERVALS = {'vot2016': (108, 371), 'vot2017': (100, 356), 'vot2018': (100, 356),
                 'vot2019': (46, 291)}
DEFAULT_YEAR = 'vot2018'
CONVENTIONS = ('pysot', 'vot-toolkit')

Record = Any  # int code or [4] / [2k] float64 array


def sequence_overlaps(records: Seq[Record], gt_regions, bounds, burnin: int = 0,
                      method: str = 'raster') -> np.ndarray:
    """[T] float64 overlaps of records with ground truth; NaN for codes and burn-in frames.

    burnin: frames starting at every code 1 (included) that are set unknown (PySOT: 10 for A).
    """
    records = list(records)
    gt_regions = list(gt_regions)
    count = min(len(records), len(gt_regions))
    masked = list(records)
    if burnin > 0:
        for index, record in enumerate(records):
            if is_code(record) and int(np.reshape(record, -1)[0]) == CODE_INIT:
                for j in range(index, min(index + burnin, len(records))):
                    masked[j] = CODE_SKIP
    return np.array([region_overlap(masked[i], gt_regions[i], bounds, method)
                     for i in range(count)], np.float64)


def failure_frames(records: Seq[Record]) -> list[int]:
    """Indices of the frames recorded as failures (code 2)."""
    return [i for i, r in enumerate(records) if is_code(r) and int(np.reshape(r, -1)[0]) == 2]


def score_sequence(records: Seq[Record], gt_regions, image_wh, burnin: int = BURNIN) -> dict:
    """Per-sequence VOT numbers.

    image_wh: (W, H). Returns dict(accuracy (nanmean of `overlaps`, NaN when all are unknown),
      num_failures, failures [indices], num_frames, overlaps [T] (bounds (W, H), burn-in),
      eao_overlaps [T] (bounds (W - 1, H - 1), no burn-in)).
    Raises ValueError when the record count differs from the ground-truth length.
    """
    gt_regions = np.asarray(gt_regions, np.float64)
    if len(records) != len(gt_regions):
        raise ValueError(f'{len(records)} result lines but {len(gt_regions)} ground-truth frames')
    width, height = image_wh
    overlaps = sequence_overlaps(records, gt_regions, (width, height), burnin)
    eao_overlaps = sequence_overlaps(records, gt_regions, (width - 1, height - 1), 0)
    failures = failure_frames(records)
    return {'accuracy': _nanmean(overlaps), 'num_failures': len(failures), 'failures': failures,
            'num_frames': len(records), 'overlaps': overlaps, 'eao_overlaps': eao_overlaps}


def _nanmean(values) -> float:
    values = np.asarray(values, np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def accuracy_robustness(per_sequence: Mapping[str, Mapping]) -> dict:
    """Pooled A/R over sequences (PySOT ar_benchmark).

    per_sequence: {name: score_sequence dict}. Returns dict(accuracy = nanmean of all frames'
      overlaps, robustness = 100 * failures / frames, lost_number = failures, num_frames,
      reliability = exp(-30 * failures / frames)).
    """
    if not per_sequence:
        raise ValueError('no sequences to score')
    overlaps = np.concatenate([np.asarray(s['overlaps'], np.float64)
                               for s in per_sequence.values()])
    frames = sum(int(s['num_frames']) for s in per_sequence.values())
    failures = sum(int(s['num_failures']) for s in per_sequence.values())
    return {'accuracy': _nanmean(overlaps), 'robustness': 100.0 * failures / frames,
            'lost_number': failures, 'num_frames': frames,
            'reliability': math.exp(-RELIABILITY_SENSITIVITY * failures / frames)}


def eao_fragments(overlaps_list: Seq, failures_list: Seq, skip: int = SKIP_INITIALIZE
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Segments of PySOT's EAO: (fragments [F, max_len] float64, weights [F]).

    overlaps_list: per sequence [T_s] overlaps (codes NaN, bounds (W - 1, H - 1), no burn-in);
    failures_list: per sequence failure frame indices. See the module docstring for the rules.
    """
    max_len = max(len(o) for o in overlaps_list)
    rows, weights = [], []
    for overlaps, failures in zip(overlaps_list, failures_list):
        overlaps = np.asarray(overlaps, np.float64)
        length = len(overlaps)
        if not len(failures):
            row = np.full(max_len, np.nan)
            row[:length] = overlaps
            rows.append(row)
            weights.append(1.0)
            continue
        points = [0] + [f + skip for f in failures if f + skip <= length]
        for k, start in enumerate(points):
            last = k == len(points) - 1
            if last:
                piece = overlaps[start:].copy()
                row = np.full(max_len, np.nan)
                weight = (length - start) / (length - start + 1e-16)
            else:
                stop = points[k + 1]
                piece = overlaps[start:stop + 1].copy()
                row = np.zeros(max_len)
                weight = (min(stop + 1, length) - start) / (stop - start + 1)
            piece[np.isnan(piece)] = 0.0
            row[:len(piece)] = piece
            rows.append(row)
            weights.append(weight)
    return np.stack(rows), np.asarray(weights, np.float64)


def curve_from_fragments(fragments: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[max_len] float32: curve[0] = 1; curve[L] = weighted mean over the fragments not NaN at
    index L of mean(fragment[1..L]); 0 where no fragment reaches L."""
    fragments = np.asarray(fragments, np.float64)
    max_len = fragments.shape[1]
    curve = np.zeros(max_len, np.float32)
    curve[0] = 1.0
    if max_len < 2:
        return curve
    lengths = np.arange(1, max_len, dtype=np.float64)
    means = np.cumsum(fragments[:, 1:], axis=1) / lengths[None, :]   # [F, max_len - 1]
    alive = ~np.isnan(fragments[:, 1:])
    w = np.where(alive, weights[:, None], 0.0)
    with np.errstate(invalid='ignore'):
        numer = np.where(alive, means * weights[:, None], 0.0).sum(axis=0)
        values = numer / w.sum(axis=0)
    any_alive = alive.any(axis=0)
    curve[1:][any_alive] = values[any_alive]
    return curve


def expected_overlap_curve(overlaps_list: Seq, failures_list: Seq,
                           skip: int = SKIP_INITIALIZE) -> np.ndarray:
    """PySOT's expected-overlap curve [max_len] float32 (see `eao_fragments`)."""
    return curve_from_fragments(*eao_fragments(overlaps_list, failures_list, skip))


def eao_interval(benchmark: str | None) -> tuple[int, int]:
    """(low, high) for 'vot2016' ... 'vot2019'; plain 'vot' or None -> VOT2018's."""
    key = (benchmark or DEFAULT_YEAR).lower().replace('-', '').replace('_', '')
    if key == 'vot':
        key = DEFAULT_YEAR
    if key not in EAO_INTERVALS:
        raise ValueError(f'no EAO interval for {benchmark!r}; known: {sorted(EAO_INTERVALS)}')
    return EAO_INTERVALS[key]


def eao(curve, interval: tuple[int, int], convention: str = 'pysot') -> float:
    """Mean of the expected-overlap curve over `interval` = (low, high).

    convention 'pysot': curve[low - 1 .. high - 1]; 'vot-toolkit': curve[low .. high]
    (0-based, inclusive). Indices past the curve's end are left out; NaN if none remains.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f'convention must be one of {CONVENTIONS}, got {convention!r}')
    low, high = interval
    shift = 1 if convention == 'pysot' else 0
    curve = np.asarray(curve)
    weight = np.zeros(len(curve))
    weight[max(low - shift, 0):high - shift + 1] = 1.0
    valid = ~np.isnan(curve)
    total = weight[valid].sum()
    if total == 0:
        return math.nan
    return float(np.sum(curve[valid] * weight[valid]) / total)


def vot_summary(per_sequence: Mapping[str, Mapping], interval=EAO_INTERVALS[DEFAULT_YEAR],
                convention: str = 'pysot', skip: int = SKIP_INITIALIZE) -> dict:
    """A/R (`accuracy_robustness`) plus eao, eao_curve, eao_interval, eao_convention,
    num_sequences, over {name: score_sequence dict}."""
    summary = accuracy_robustness(per_sequence)
    curve = expected_overlap_curve([s['eao_overlaps'] for s in per_sequence.values()],
                                   [s['failures'] for s in per_sequence.values()], skip)
    summary.update(eao=eao(curve, interval, convention), eao_curve=curve,
                   eao_interval=list(interval), eao_convention=convention,
                   num_sequences=len(per_sequence))
    return summary
