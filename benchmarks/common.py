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


def write_result(name: str, result: dict) -> Path:
    """Writes benchmarks/results/<name>_<platform>.json and returns its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = dict(result, machine=machine(), date=time.strftime('%Y-%m-%d %H:%M:%S'))
    path = RESULTS_DIR / f'{name}_{result["machine"]["platform"]}.json'
    path.write_text(json.dumps(result, indent=2) + '\n')
    print(json.dumps(result, indent=2))
    print(f'written: {path}')
    return path
