"""Tracking frames/s of ROAM's functional tracker, split into the frozen VGG forward and the rest.

    python benchmarks/roam_latency.py [--variants vgg16 tiny] [--frames 10]

Per variant (configs/roam.py), with random weights (`roam.functional.init_variables`; the cost
does not depend on their values) on ../shared's vot/bag frames when present (else random
480x360): the jitted `roam.tracker_fns(config).step` over --frames frames after two warm-up
frames, every fifth step running the model update (two LSTM steps on the sample memory under
`lax.cond`), and, interleaved with it so both see the same load, the jitted VGG forward alone on
one search crop. Reported per variant: the median step without / with the update, the VGG
forward median, the rest of a plain step (crop, model, post-processing, memory write; step minus
VGG), the update's own cost, frames/s over the 4:1 schedule, and the first-frame init (nine
crops + one step). Wall and process CPU seconds (the latter less sensitive to other jobs).
Writes benchmarks/results/roam_latency.json (all variants).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS_DIR, benchmark_frames, machine  # noqa: E402
from configs.roam import get_config  # noqa: E402
from roam import functional  # noqa: E402


def _timed(fn):
    """((wall seconds, process CPU seconds), result) of fn() run to completion."""
    start, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn())
    return (time.perf_counter() - start, time.process_time() - cpu), out


def _variant(name, frames, init_box, count):
    config = get_config(name)
    variables = jax.device_put(functional.init_variables(config, jax.random.PRNGKey(0),
                                                         theta_scale=0.1))
    fns = functional.tracker_fns(config)
    init, step = jax.jit(fns.init), jax.jit(fns.step)
    features = jax.jit(functional._features(config))
    crop = np.zeros((1, config.model.crop_size, config.model.crop_size, 3), np.float32)
    crop = jax.device_put(crop + np.asarray(config.model.rgb_mean, np.float32))
    frame_hw = jax.device_put(np.asarray(frames[0].shape[:2], np.int32))
    frames = [jax.device_put(f) for f in frames]
    box0 = jnp.asarray(init_box, jnp.float32)

    (compile_init, _), _ = _timed(lambda: init.lower(variables, frames[0], frame_hw,
                                                     box0).compile())
    t_init, state = _timed(lambda: init(variables, frames[0], frame_hw, box0))
    plain, update, vgg = [], [], []
    for i in range(count + 2):                       # two warm-up frames (compilation)
        frame = frames[1 + i % (len(frames) - 1)]
        t_step, (state, out) = _timed(lambda: step(variables, state, frame, frame_hw))
        t_vgg, _ = _timed(lambda: features(variables['vgg'], crop))
        if i >= 2:
            (update if bool(out['updated']) else plain).append(t_step)
            vgg.append(t_vgg)
    med = {k: np.median(np.asarray(v), axis=0) if v else np.array([np.nan, np.nan])
           for k, v in (('plain', plain), ('update', update), ('vgg', vgg))}
    interval = config.test.update_interval
    per_frame = ((interval - 1) * med['plain'] + med['update']) / interval
    out = dict(variant=name, timed_steps=len(plain) + len(update), update_steps=len(update),
               init_compile_s=compile_init, init_s=t_init[0], init_cpu_s=t_init[1])
    for i, clock in enumerate(('wall', 'cpu')):
        out[clock] = dict(
            step_plain_median_s=float(med['plain'][i]),
            step_update_median_s=float(med['update'][i]),
            vgg_forward_median_s=float(med['vgg'][i]),
            rest_of_plain_step_s=float(med['plain'][i] - med['vgg'][i]),
            update_extra_s=float(med['update'][i] - med['plain'][i]),
            mean_s_per_frame=float(per_frame[i]),
            frames_per_s=float(1.0 / per_frame[i]),
            vgg_share_of_plain_step=float(med['vgg'][i] / med['plain'][i]))
    print(json.dumps(out, indent=2), flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variants', nargs='+', default=['vgg16', 'tiny'])
    parser.add_argument('--frames', type=int, default=10,
                        help='timed steps per variant (every 5th runs the update)')
    parser.add_argument('--out', default=str(RESULTS_DIR / 'roam_latency.json'))
    args = parser.parse_args()
    frames, init_box, source = benchmark_frames(min(args.frames + 2, 40))
    result = dict(frames=source, variants=[_variant(v, frames, init_box, args.frames)
                                           for v in args.variants],
                  command='python benchmarks/roam_latency.py --variants '
                          + ' '.join(args.variants) + f' --frames {args.frames}',
                  machine=machine(), date=time.strftime('%Y-%m-%d %H:%M:%S'))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + '\n')
    print(f'written: {path}')


if __name__ == '__main__':
    main()
