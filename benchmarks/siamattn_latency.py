"""SiamAttn's track step against SiamRPN++'s on this machine: median seconds per frame.

    python benchmarks/siamattn_latency.py [--frames 8] [--variant r50_l234]

Each round times, in turn (interleaved, so a shared CPU's load hits every path alike):
* `siamrpn_step`: SiamRPN++'s jitted `siam.tracker_fns` step (configs/siamrpn.py, same variant);
* `siamattn_step_box`: SiamAttn's jitted step without the mask (config.test.mask False: RPN box,
  DSA, fusion, box refinement);
* `siamattn_step_mask`: SiamAttn's jitted step with the mask head (64x64 logits);
* `siamattn_polygon`: the host polygon of that step's mask (sigmoid, warpAffine onto the frame,
  findContours, minAreaRect; `siam.polygon.mask_polygon`), and `siamattn_mask_and_polygon` =
  the two together (what VOT evaluation runs per frame).
Weights are random (He-normal, unit BN; the cost does not depend on them), built from the
variable shapes without compiling `model.init`. Frames come from ../shared/data/sequences/vot/bag
when present, else random 480x360 frames. Medians of wall clock and process CPU time (all
threads). Writes benchmarks/results/siamattn_latency.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS_DIR, benchmark_frames, machine  # noqa: E402
from configs.siamattn import get_config as siamattn_config  # noqa: E402
from configs.siamrpn import get_config as siamrpn_config  # noqa: E402
from siam import tracker_fns  # noqa: E402
from siam.model import variable_shapes as siamrpn_shapes  # noqa: E402
from siam.polygon import mask_polygon  # noqa: E402
from siam.random_weights import random_variables  # noqa: E402
from siam.siamattn import variable_shapes as siamattn_shapes  # noqa: E402


def _timed(fn):
    """(wall seconds, process CPU seconds, result) of fn() until its result is ready."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = jax.block_until_ready(fn())
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variant', default='r50_l234', choices=['r50_l234', 'tiny'])
    parser.add_argument('--frames', type=int, default=8, help='timed rounds (one frame each)')
    parser.add_argument('--out', default=str(RESULTS_DIR / 'siamattn_latency.json'))
    args = parser.parse_args()

    frames, init_box, source = benchmark_frames(args.frames + 1)
    frame_hw = np.asarray(frames[0].shape[:2], np.int32)
    frame_wh = (int(frame_hw[1]), int(frame_hw[0]))
    device_frames = [jax.device_put(f) for f in frames]
    box0 = np.asarray(init_box, np.float32)

    rpn_config = siamrpn_config(args.variant)
    attn_config = siamattn_config(args.variant)
    box_config = siamattn_config(args.variant)
    box_config.test.mask = False
    rpn_vars = jax.device_put(random_variables(siamrpn_shapes(rpn_config.model)))
    attn_vars = jax.device_put(random_variables(siamattn_shapes(attn_config.model)))
    paths = {'siamrpn_step': (rpn_config, rpn_vars), 'siamattn_step_box': (box_config, attn_vars),
             'siamattn_step_mask': (attn_config, attn_vars)}
    runs, compile_s = {}, {}
    for name, (config, variables) in paths.items():
        fns = tracker_fns(config)
        init, step = jax.jit(fns.init), jax.jit(fns.step)
        state = init(variables, device_frames[0], frame_hw, box0)
        start = time.perf_counter()
        state, out = jax.block_until_ready(step(variables, state, device_frames[1], frame_hw))
        compile_s[name] = time.perf_counter() - start
        runs[name] = dict(step=step, state=state, variables=variables, fns=fns)
        print(f'{name}: first step (compile) {compile_s[name]:.1f} s', flush=True)

    names = [*paths, 'siamattn_polygon', 'siamattn_mask_and_polygon']
    times = {name: [] for name in names}
    for i in range(1, args.frames + 1):
        for name in paths:
            run = runs[name]

            def call(run=run, i=i):
                new_state, out = run['step'](run['variables'], run['state'], device_frames[i],
                                             frame_hw)
                run['state'] = new_state
                return out
            wall, cpu, out = _timed(call)
            times[name].append((wall, cpu))
            if name == 'siamattn_step_mask':
                host = jax.device_get(out)
                p_wall, p_cpu, _ = _timed(lambda host=host: run['fns'].region(host, frame_wh))
                times['siamattn_polygon'].append((p_wall, p_cpu))
                times['siamattn_mask_and_polygon'].append((wall + p_wall, cpu + p_cpu))

    result = dict(machine=machine(), variant=args.variant, frames=args.frames, source=source,
                  frame_size_wh=list(frame_wh), weights='random (numpy He-normal, unit BN)',
                  compile_and_first_step_s={k: round(v, 2) for k, v in compile_s.items()},
                  median_wall_ms={}, median_cpu_ms={})
    for name in names:
        walls, cpus = zip(*times[name])
        result['median_wall_ms'][name] = round(1e3 * float(np.median(walls)), 2)
        result['median_cpu_ms'][name] = round(1e3 * float(np.median(cpus)), 2)
    wall = result['median_wall_ms']
    result['ratio_to_siamrpn_wall'] = {
        name: round(wall[name] / wall['siamrpn_step'], 3)
        for name in ('siamattn_step_box', 'siamattn_step_mask', 'siamattn_mask_and_polygon')}
    result['frames_per_s_wall'] = {name: round(1e3 / wall[name], 2) for name in names}
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
