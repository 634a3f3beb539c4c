"""Shared helpers of the benchmark scripts: timing and writing results next to the scripts."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

RESULTS_DIR = Path(__file__).parent / 'results'
BAG = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'sequences' / 'vot' / 'bag'


def benchmark_frames(count: int) -> tuple[list[np.ndarray], np.ndarray, str]:
    """count + 1 RGB frames, the frame-0 box (x, y, w, h) and their source: the real `bag`
    sequence from ../shared when present, else random 480x360 frames."""
    if BAG.is_dir():
        from tracking.data.benchmarks import load_benchmark
        sequence = load_benchmark('vot', str(BAG))[0]
        return [sequence.frame(i) for i in range(count + 1)], sequence.boxes[0], 'vot/bag'
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (360, 480, 3), np.uint8) for _ in range(count + 1)]
    return frames, np.array([200.0, 150.0, 60.0, 40.0], np.float32), 'random 480x360'


def time_tracker_steps(tracker, frames, init_box) -> np.ndarray:
    """Seconds of each `tracker.track` call over frames[1:] after initialising on frames[0]
    (one extra untimed step first, to compile)."""
    tracker.initialize(frames[0], init_box)
    tracker.track(frames[1])
    times = [time_calls(lambda: tracker.track(frame), warmup=0, repeats=1)[0]
             for frame in frames[1:]]
    return np.asarray(times)


def time_calls(fn, warmup: int, repeats: int) -> np.ndarray:
    """Calls fn() warmup times, then times `repeats` calls; returns seconds per call [repeats]."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def machine() -> dict:
    device = jax.devices()[0]
    return dict(platform=device.platform, device=str(device.device_kind),
                num_devices=jax.device_count(), cpu_count=os.cpu_count(),
                python=platform.python_version(), jax=jax.__version__)


def write_result(name: str, result: dict, filename: str | None = None,
                 not_printed: tuple[str, ...] = ()) -> Path:
    """Writes `result` with the machine and date to benchmarks/results/<name>_<platform>.json
    (or benchmarks/results/<filename> when given), prints it without the keys in
    `not_printed` (long per-round rows, say), and returns its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = dict(result, machine=machine(), date=time.strftime('%Y-%m-%d %H:%M:%S'))
    path = RESULTS_DIR / (filename or f'{name}_{result["machine"]["platform"]}.json')
    path.write_text(json.dumps(result, indent=2) + '\n')
    print(json.dumps({k: v for k, v in result.items() if k not in not_printed}, indent=2))
    print(f'written: {path}')
    return path
