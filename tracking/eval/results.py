"""Result files in the official layouts: write (atomically), check, find and read back.

Layouts (`out_dir` is the benchmark's results folder, e.g. `results/OTB100`):

* OPE benchmarks (otb, uav123, nfs, lasot, synthetic), PySOT layout:
  `<out_dir>/<tracker>/<seq>.txt`, one `x,y,w,h` line per frame (%.4f, comma), first line = the
  init box.
* GOT-10k (got10k toolkit): `<out_dir>/<tracker>/<seq>/<seq>_001.txt` (%.3f, comma) and
  `<seq>_time.txt` (%.8f, one row per frame, seconds; zeros when the times are unknown, which
  the toolkit ignores when computing speed). Upload: zip of the `<tracker>` folder's content.
* TrackingNet: `<out_dir>/<tracker>/<seq>.txt` (%.2f, comma); upload: flat zip of the files.
* VOT reset protocol: `<out_dir>/<tracker>/baseline/<seq>/<seq>_001.txt` (codes or %.4f boxes),
  one line per frame: the integer code, or the box as comma-separated `%.4f` values (of the
  value as a C float, like PySOT's `vot_float2str`), plus `<seq>_001_time.value` (seconds per
  frame, 0 where not run); `write_vot_records` / `read_vot_records` (the VOT toolkit and PySOT
  read these files; only repetition 001 is written and read). VOT scored one-pass ('vot-ope')
  uses the OPE layout.

Files are written to a temporary name and renamed with `os.replace`, so a killed run never
leaves a truncated file under the final name (GOT-10k: the time file first, the box file last).
"""
from __future__ import annotations

import os
import re
import tempfile
import zipfile
from typing import Any, Sequence as Seq
from pathlib import Path

import numpy as np

from tracking.eval.region import is_code

Record = Any  # a VOT record: int code or [4] / [2k] float64 array

OPE_BENCHMARKS = ('otb', 'uav123', 'nfs', 'lasot', 'lasot_ext', 'tnl2k', 'synthetic')
_ALIASES = {'otb100': 'otb', 'otb2015': 'otb', 'uav': 'uav123', 'nfs30': 'nfs',
            'lasotext': 'lasot_ext', 'lasotextension': 'lasot_ext'}

_BOX_FORMAT = {'ope': '%.4f', 'got10k': '%.3f', 'trackingnet': '%.2f'}
_TIME_FORMAT = '%.8f'
_SPLIT = re.compile(r'\s*,\s*|\s+')


def layout(benchmark: str) -> str:
    """'ope', 'got10k' or 'trackingnet' for a benchmark name (case/dash insensitive)."""
    key = benchmark.lower().replace('-', '').replace('_', '')
    key = _ALIASES.get(key, key)
    if key in OPE_BENCHMARKS:
        return 'ope'
    if key in ('got10k', 'trackingnet'):
        return key
    raise ValueError(f'no result-file layout for benchmark {benchmark!r}; known: '
                     f'{list(OPE_BENCHMARKS) + ["got10k", "trackingnet"]} (VOT is elsewhere)')


def result_path(out_dir, benchmark: str, tracker_name: str, seq_name: str) -> Path:
    """Path of the box file of one sequence (see the module docstring for the layouts)."""
    tracker_dir = Path(out_dir) / tracker_name
    if layout(benchmark) == 'got10k':
        return tracker_dir / seq_name / f'{seq_name}_001.txt'
    return tracker_dir / f'{seq_name}.txt'


def got10k_time_path(box_path) -> Path:
    """`<seq>/<seq>_001.txt` -> `<seq>/<seq>_time.txt`."""
    box_path = Path(box_path)
    return box_path.with_name(box_path.name[:box_path.name.rfind('_')] + '_time.txt')


def atomic_write_text(path: Path, text: str) -> None:
    """Writes text to a temporary file beside `path`, then renames it: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _format_rows(values: np.ndarray, fmt: str) -> str:
    return ''.join(','.join(fmt % v for v in row) + '\n' for row in values)


def write_sequence(out_dir, benchmark: str, tracker_name: str, seq_name: str, boxes,
                   times=None) -> Path:
    """Writes one sequence's result file(s) atomically; returns the box file path.

    boxes: [T, 4] (x, y, w, h) pixels, first row = init box.
    times: [T] seconds per frame or None (used by GOT-10k only; None writes zeros).
    """
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'{seq_name}: boxes must be [T, 4], got {boxes.shape}')
    kind = layout(benchmark)
    path = result_path(out_dir, benchmark, tracker_name, seq_name)
    if kind == 'got10k':
        times = np.zeros(len(boxes)) if times is None else np.asarray(times, np.float64)
        if times.shape != (len(boxes),):
            raise ValueError(f'{seq_name}: times must be [{len(boxes)}], got {times.shape}')
        atomic_write_text(got10k_time_path(path), _format_rows(times[:, None], _TIME_FORMAT))
    atomic_write_text(path, _format_rows(boxes, _BOX_FORMAT[kind]))
    return path


def _count_lines(path: Path) -> int:
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def is_done(out_dir, benchmark: str, tracker_name: str, seq_name: str, num_frames: int) -> bool:
    """True when the sequence's box file exists and has exactly `num_frames` non-empty lines."""
    path = result_path(out_dir, benchmark, tracker_name, seq_name)
    return path.is_file() and _count_lines(path) == num_frames


def find_result_file(results_dir, benchmark: str, seq_name: str) -> Path | None:
    """The box file of `seq_name` inside a tracker's result folder, or None.

    results_dir: the tracker folder itself, holding `<seq>.txt` (PySOT, TrackingNet, LaSOT
      toolkit, pytracking) or `<seq>/<seq>_001.txt` (GOT-10k). Both names are tried, the
      benchmark's own layout first.
    """
    results_dir = Path(results_dir)
    flat = results_dir / f'{seq_name}.txt'
    nested = results_dir / seq_name / f'{seq_name}_001.txt'
    candidates = (nested, flat) if layout(benchmark) == 'got10k' else (flat, nested)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def parse_boxes(text: str, source: str = '<string>') -> np.ndarray:
    """Parses x,y,w,h lines (comma, tab or spaces) -> [T, 4] float64.

    Trailing blank lines are ignored; any other malformed line raises ValueError naming
    `source` and the 1-based line number.
    """
    lines = text.lstrip('\ufeff').splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = _SPLIT.split(line.strip())
        try:
            if len(fields) != 4:
                raise ValueError
            rows.append([float(v) for v in fields])
        except ValueError:
            raise ValueError(f'{source}, line {number}: expected 4 numbers x,y,w,h separated '
                             f'by commas, tabs or spaces, got {line!r}') from None
    if not rows:
        raise ValueError(f'{source}: no boxes in the file')
    return np.asarray(rows, np.float64)


def read_boxes(path) -> np.ndarray:
    """Reads a result file (ours or another tracker's raw results) -> [T, 4] float64."""
    path = Path(path)
    return parse_boxes(path.read_text(), str(path))


def read_sequence(path_or_dir, benchmark: str, seq_name: str, tracker_name: str | None = None
                  ) -> np.ndarray:
    """[T, 4] float64 boxes of one sequence.

    path_or_dir: the result file itself, a tracker folder, or (with `tracker_name`) the folder
      holding tracker folders (`out_dir` of `write_sequence`). Raises FileNotFoundError naming the
      places looked at when no file is found.
    """
    path = Path(path_or_dir)
    if path.is_file():
        return read_boxes(path)
    folder = path / tracker_name if tracker_name else path
    found = find_result_file(folder, benchmark, seq_name)
    if found is None:
        raise FileNotFoundError(f'no result for sequence {seq_name!r} in {folder} (looked for '
                                f'{seq_name}.txt and {seq_name}/{seq_name}_001.txt)')
    return read_boxes(found)


def read_times(box_path) -> np.ndarray | None:
    """GOT-10k `<seq>_time.txt` next to a box file -> [T] (first column) or None if absent."""
    time_path = got10k_time_path(box_path)
    if not time_path.is_file():
        return None
    rows = [line for line in time_path.read_text().splitlines() if line.strip()]
    try:
        return np.asarray([float(_SPLIT.split(r.strip())[0]) for r in rows], np.float64)
    except ValueError as e:
        raise ValueError(f'{time_path}: malformed time file ({e})') from None


def zip_results(out_dir, benchmark: str, tracker_name: str, zip_path=None) -> Path:
    """Zips a tracker's results for upload; returns the zip path.

    TrackingNet: the `<seq>.txt` files flat at the archive root (devkit / eval.ai format).
    GOT-10k: the content of the tracker folder (`<seq>/<seq>_001.txt`, `<seq>/<seq>_time.txt`).
    zip_path: default `<out_dir>/<tracker_name>.zip`.
    """
    tracker_dir = Path(out_dir) / tracker_name
    if not tracker_dir.is_dir():
        raise FileNotFoundError(f'no results folder {tracker_dir}')
    kind = layout(benchmark)
    if kind == 'trackingnet':
        files = sorted(tracker_dir.glob('*.txt'))
        names = [f.name for f in files]
    elif kind == 'got10k':
        files = sorted(p for p in tracker_dir.glob('*/*.txt'))
        names = [f.relative_to(tracker_dir).as_posix() for f in files]
    else:
        raise ValueError(f'{benchmark}: results are evaluated locally, no upload zip')
    if not files:
        raise FileNotFoundError(f'no result files in {tracker_dir}')
    zip_path = Path(zip_path) if zip_path else Path(out_dir) / f'{tracker_name}.zip'
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(f'.{zip_path.name}.tmp')
    with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as archive:
        for file, name in zip(files, names):
            archive.write(file, arcname=name)
    os.replace(tmp, zip_path)
    return zip_path


def zip_trackingnet(out_dir, tracker_name: str, zip_path=None) -> Path:
    """Flat zip of `<out_dir>/<tracker_name>/<seq>.txt` for the TrackingNet server."""
    return zip_results(out_dir, 'trackingnet', tracker_name, zip_path)


# --- VOT reset-protocol records -----------------------------------------------------------------

def vot_result_path(out_dir, tracker_name: str, seq_name: str) -> Path:
    """`<out_dir>/<tracker>/baseline/<seq>/<seq>_001.txt`."""
    return Path(out_dir) / tracker_name / 'baseline' / seq_name / f'{seq_name}_001.txt'


def vot_time_path(box_path) -> Path:
    """`<seq>_001.txt` -> `<seq>_001_time.value` beside it."""
    box_path = Path(box_path)
    return box_path.with_name(box_path.stem + '_time.value')


def format_vot_record(record: Record) -> str:
    """One result line: the integer code, or comma-separated %.4f of the values as C floats."""
    if is_code(record):
        return str(int(np.reshape(record, -1)[0]))
    values = np.asarray(record, np.float32).reshape(-1)
    return ','.join('%.4f' % float(v) for v in values)


def write_vot_records(out_dir, tracker_name: str, seq_name: str, records: Seq[Record],
                  times=None) -> Path:
    """Writes the time file, then the box file, each atomically; returns the box file path."""
    path = vot_result_path(out_dir, tracker_name, seq_name)
    times = np.zeros(len(records)) if times is None else np.asarray(times, np.float64)
    if times.shape != (len(records),):
        raise ValueError(f'{seq_name}: times must be [{len(records)}], got {times.shape}')
    atomic_write_text(vot_time_path(path), ''.join('%.6f\n' % t for t in times))
    atomic_write_text(path, ''.join(format_vot_record(r) + '\n' for r in records))
    return path


def parse_vot_records(text: str, source: str = '<string>') -> list:
    """Result lines -> records: an int code for a 1-value line, else a float64 array of 4 or an
    even number >= 6 of values. A line with NaN values stays a region of numbers, as PySOT reads
    it (`list(map(float, line.split(',')))`); its overlap is 0 (`region_overlap`), so it lowers
    A and the EAO instead of being skipped, and it is not a failure. Blank trailing lines are
    ignored; anything else malformed is a ValueError naming `source` and the 1-based line."""
    lines = text.lstrip('\ufeff').splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, line in enumerate(lines, start=1):
        fields = [f for f in _SPLIT.split(line.strip()) if f]
        try:
            values = [float(f) for f in fields]
            if len(values) == 1:
                if values[0] != int(values[0]):
                    raise ValueError
                records.append(int(values[0]))
            elif len(values) == 4 or (len(values) >= 6 and len(values) % 2 == 0):
                records.append(np.asarray(values, np.float64))
            else:
                raise ValueError
        except (ValueError, OverflowError):
            raise ValueError(f'{source}, line {number}: expected an integer code or 4 / an even '
                             f'number >= 6 of comma-separated values, got {line!r}') from None
    return records


def read_vot_records(path) -> list:
    """Reads a VOT result file (ours, PySOT's or the VOT toolkit's text format)."""
    path = Path(path)
    return parse_vot_records(path.read_text(), str(path))


def vot_is_done(out_dir, tracker_name: str, seq_name: str, num_frames: int) -> bool:
    """True when the sequence's result file exists with exactly `num_frames` non-empty lines."""
    path = vot_result_path(out_dir, tracker_name, seq_name)
    if not path.is_file():
        return False
    with open(path) as f:
        return sum(1 for line in f if line.strip()) == num_frames


def find_vot_result_file(results_dir, seq_name: str) -> Path | None:
    """A tracker folder's result file for `seq_name`: `baseline/<seq>/<seq>_001.txt` (VOT
    toolkit, PySOT) or `<seq>/<seq>_001.txt`; None if neither exists."""
    results_dir = Path(results_dir)
    for candidate in (results_dir / 'baseline' / seq_name / f'{seq_name}_001.txt',
                      results_dir / seq_name / f'{seq_name}_001.txt'):
        if candidate.is_file():
            return candidate
    return None
