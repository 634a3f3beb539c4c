"""What the side-by-side benchmarks (grm_vs_official.py, siam_vs_official.py) share: the
official tracker's process behind a line protocol, our timed step, and the per-round summary.

The official side is a separate process started from `--official_cmd`. It must drive the
official tracker and speak this protocol on stdin/stdout, one line each (this repository ships
no such driver: it would import the official code; docs/performance.md says what the measured
ones do):

    (startup)                  -> ready
    init <image path> x y w h  -> ok
    step <image path>          -> x y w h wall_s cpu_s   (its tracker's track() alone, timed
                                                           in its own process)
    quit
"""
from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import numpy as np


class Official:
    """The official tracker's process, spoken to with the line protocol (module docstring)."""

    def __init__(self, command: str):
        self.command = command
        self.process = subprocess.Popen(shlex.split(command), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)
        self._expect('ready', 'startup')

    def _read(self, what: str) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f'official driver ({self.command!r}) ended during {what} '
                               f'(exit code {self.process.poll()})')
        return line.strip()

    def _expect(self, word: str, what: str) -> None:
        while True:
            line = self._read(what)
            if line == word:
                return
            if line.startswith('error'):
                raise RuntimeError(f'official driver, {what}: {line}')

    def init(self, path: Path, box) -> None:
        self.process.stdin.write(f'init {path} ' + ' '.join(f'{v:.6f}' for v in box) + '\n')
        self._expect('ok', f'init on {path}')

    def step(self, path: Path) -> tuple[np.ndarray, float, float]:
        """(box [4], wall s, CPU s) of the official step on the frame at `path`."""
        self.process.stdin.write(f'step {path}\n')
        line = self._read(f'step on {path}')
        values = line.split()
        if len(values) != 6:
            raise RuntimeError(f'official driver, step on {path}: expected "x y w h wall_s '
                               f'cpu_s", got {line!r}')
        values = [float(v) for v in values]
        return np.asarray(values[:4]), values[4], values[5]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write('quit\n')
            self.process.stdin.close()
            self.process.wait(timeout=60)


def timed_track(tracker, frame: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(box, wall s, process CPU s) of `tracker.track(frame)`; the box comes back to the host
    as numpy, so the time includes waiting for the device."""
    start, cpu = time.perf_counter(), time.process_time()
    box = tracker.track(frame)
    return box, time.perf_counter() - start, time.process_time() - cpu


def summarize_rounds(rows: list[dict], ours: str, box_key: str) -> dict:
    """Medians over the timed (non-warm-up) rounds of `rows`, whose keys are `<ours>_wall_s`,
    `<ours>_cpu_s`, `official_wall_s`, `official_cpu_s` (seconds) and `box_key` (px): medians of
    each side's wall and process CPU seconds, the ratio of medians, the median of the per-round
    ratios ours / official, and the largest box difference over all rounds."""
    timed = [r for r in rows if not r['warmup']]
    col = lambda key: np.asarray([r[key] for r in timed])  # noqa: E731
    med = lambda key: float(np.median(col(key)))  # noqa: E731
    summary = {}
    for clock in ('wall', 'cpu'):
        summary[f'ours_{clock}_median_s'] = med(f'{ours}_{clock}_s')
        summary[f'official_{clock}_median_s'] = med(f'official_{clock}_s')
    for clock in ('wall', 'cpu'):
        summary[f'{clock}_ratio_of_medians'] = med(f'{ours}_{clock}_s') / med(f'official_{clock}_s')
        summary[f'{clock}_ratio_per_round_median'] = float(np.median(
            col(f'{ours}_{clock}_s') / col(f'official_{clock}_s')))
    summary['box_max_abs_diff_px'] = max(r[box_key] for r in rows)
    return summary
