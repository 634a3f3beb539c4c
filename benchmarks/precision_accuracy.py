"""What config.test.precision costs in accuracy: success AUC per mode on the synthetic test split,
and the box difference bfloat16 / tf32 vs float32 of the full models on the real `bag` frames.

    python -m tracking.data.synthetic_folder --split test --out /tmp/synthetic_test   # once (TF)
    python benchmarks/precision_accuracy.py --root /tmp/synthetic_test \
        [--grm_checkpoint work/demo/...] [--siamrpn_checkpoint work/demo_siamrpn/...] \
        [--sequences 30] [--bag_frames 10] [--parts synthetic,bag]

synthetic: GRM-tiny and SiamRPN++-tiny on the exported synthetic test split (one-pass, the
toolkit's success AUC), every sequence at once through jit(vmap(track_video)) of the trackers'
step, once per precision mode, with the given trained checkpoints or, without them, the untrained models
(`<package>.model.init_variables(PRNGKey(config.seed))`: their AUC says nothing about a trained
tracker's loss, only that the modes run the whole split; the result file says which). Reported
per mode: success AUC, precision @20 px, and the largest box difference from the float32 run
over all frames (px).

bag: GRM-B (vitb_256, threshold 0) and SiamRPN++ R50 (r50_l234) with the converted weights of the
parity bundles in ../shared/reference (the official state_dicts rebuilt from their manifests)
tracked over the first --bag_frames frames of vot/bag by `jax.jit(track_video)`, per mode: the
largest per-frame box difference from the float32 run and from the official tracker's boxes of
the bundle (track.npz). These weights are the parity bundles' (1-d tensors stored, the rest
filled by the bundle's rule), not trained ones: the numbers measure the numeric effect of each
mode on a full-size network, not benchmark accuracy.

On this CPU 'tf32' is expected to equal 'float32' bit for bit (XLA:CPU ignores the TF32 hint);
the script records whether it does. Writes benchmarks/results/precision_accuracy.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'tests'))     # helpers.reference_state_dict (the bundle rule)
from benchmarks.common import BAG, RESULTS_DIR, machine  # noqa: E402
from tracking import precision  # noqa: E402
from tracking.api import track_video  # noqa: E402
from tracking.config import load_config  # noqa: E402
from tracking.data.synthetic_folder import synthetic_folder_entries  # noqa: E402

REFERENCE = REPO.parent / 'shared' / 'reference'
SYNTHETIC = {'grm': 'grm.py:tiny', 'siamrpn': 'siamrpn.py:tiny'}
BAG_MODELS = {'grm': ('grm.py:vitb_256', 'grm_vitb_256', 'boxes_argmax'),
              'siamrpn': ('siamrpn.py:r50_l234', 'siamrpn_r50_l234', 'boxes')}


def _with_precision(config_name: str, mode: str):
    config = load_config(str(REPO / 'configs' / config_name))
    config.test.precision = mode
    return config


def _fns(name: str, config):
    """(TrackerFns, variables preparer) of a tracker for one config (threshold 0 for GRM)."""
    if name == 'grm':
        from grm_jax.functional import tracker_fns
        return tracker_fns(config, 0.0), lambda v: v
    from siam.functional import prepare_variables, tracker_fns
    return tracker_fns(config), lambda v: prepare_variables(config, v)


def _untrained(name: str, config):
    rng = jax.random.PRNGKey(int(config.seed))
    if name == 'grm':
        from grm_jax.model import init_variables
        return jax.device_get(init_variables(config, rng))
    from siam.model import init_variables
    return jax.device_get(init_variables(config.model, rng))


def _variables(name: str, config, checkpoint: str | None):
    """(variables, source): the checkpoint's, or the untrained model's."""
    if checkpoint:
        from tracking.checkpoint import restore_variables
        return restore_variables(checkpoint), f'checkpoint {checkpoint}'
    return _untrained(name, config), 'untrained (init_variables(PRNGKey(config.seed)))'


def _padded(sequences):
    """frames [N, T, Hp, Wp, 3] uint8 (each sequence padded bottom/right to the largest frame
    and to the longest sequence by repeating its last frame), frame_hw [N, 2] int32, box0 [N, 4]."""
    count, length = len(sequences), max(len(s) for s in sequences)
    sizes = np.array([np.asarray(s.frame(0)).shape[:2] for s in sequences], np.int32)
    hp, wp = sizes.max(axis=0)
    frames = np.zeros((count, length, hp, wp, 3), np.uint8)
    for i, sequence in enumerate(sequences):
        h, w = sizes[i]
        for t in range(length):
            frames[i, t, :h, :w] = sequence.frame(min(t, len(sequence) - 1))
    box0 = np.stack([np.asarray(s.boxes[0], np.float32) for s in sequences])
    return frames, sizes, box0


def synthetic_part(args) -> dict:
    """All sequences at once: one jit(vmap(track_video)) per tracker and mode (the step
    `eval.py --batch_sequences` runs), scored with the toolkit's OPE metrics (pysot rules, absent
    frames counted as failures, as eval.py scores the synthetic benchmark)."""
    from tracking.eval.metrics import ope_sequence, ope_summary
    entries = synthetic_folder_entries(args.root)[:args.sequences]
    sequences = [load() for _, load in entries]
    frames, sizes, box0 = _padded(sequences)
    part = {'root': str(args.root), 'sequences': len(sequences),
            'frames': int(sum(len(s) for s in sequences)), 'trackers': {}}
    for name, config_name in SYNTHETIC.items():
        checkpoint = getattr(args, f'{name}_checkpoint')
        variables, source = _variables(name, load_config(str(REPO / 'configs' / config_name)),
                                       checkpoint)
        rows, boxes = {}, {}
        for mode in precision.PRECISIONS:
            fns, prepare = _fns(name, _with_precision(config_name, mode))
            run = jax.jit(jax.vmap(track_video, in_axes=(None, None, 0, 0, 0)),
                          static_argnums=0)
            start = time.perf_counter()
            got, _ = jax.block_until_ready(run(fns, prepare(variables), frames, sizes, box0))
            seconds = time.perf_counter() - start
            got = np.asarray(got, np.float64)
            boxes[mode] = [got[i, :len(s)] for i, s in enumerate(sequences)]
            summary = ope_summary({s.name: ope_sequence(boxes[mode][i], s.boxes, s.visible)
                                   for i, s in enumerate(sequences)})
            rows[mode] = {'success_auc': float(summary['auc']),
                          'precision_20px': float(summary['precision']),
                          'seconds_incl_compile': round(seconds, 1)}
            print(f'synthetic {name} {mode}: {rows[mode]}', flush=True)
        for mode in precision.PRECISIONS:
            diffs = np.array([np.max(np.abs(a - b))
                              for a, b in zip(boxes[mode], boxes['float32'])])
            rows[mode]['max_box_diff_vs_float32_px'] = float(diffs.max())
            rows[mode]['sequences_differing'] = int(np.sum(diffs > 0))
        part['trackers'][name] = {'config': config_name, 'variables': source, 'modes': rows}
    return part


def bag_part(args) -> dict:
    from helpers import reference_state_dict
    from tracking.images import load_image
    paths = sorted(BAG.glob('*.jpg'))[:args.bag_frames]
    frames = np.stack([load_image(p) for p in paths])
    frame_hw = np.array(frames.shape[1:3], np.int32)
    part = {'sequence': 'vot/bag', 'frames': len(paths), 'trackers': {}}
    for name, (config_name, bundle, key) in BAG_MODELS.items():
        bundle = REFERENCE / bundle
        reference = np.load(bundle / 'track.npz')
        config = load_config(str(REPO / 'configs' / config_name))
        state_dict = reference_state_dict(bundle)
        if name == 'grm':
            from grm_jax.convert import from_official
        else:
            from siam.convert import from_official
        variables = jax.device_put(from_official(state_dict, config))
        official = np.asarray(reference[key], np.float64)[:len(paths)]
        rows, boxes = {}, {}
        for mode in precision.PRECISIONS:
            fns, prepare = _fns(name, _with_precision(config_name, mode))
            run = jax.jit(track_video, static_argnums=0)
            start = time.perf_counter()
            got, scores = jax.block_until_ready(run(fns, prepare(variables), frames, frame_hw,
                                                    reference['init_box']))
            seconds = time.perf_counter() - start
            boxes[mode] = np.asarray(got, np.float64)
            rows[mode] = {
                'max_box_diff_vs_official_px': float(np.max(np.abs(boxes[mode] - official))),
                'per_frame_max_diff_vs_official_px': np.round(
                    np.max(np.abs(boxes[mode] - official), axis=1), 5).tolist(),
                'seconds_incl_compile': round(seconds, 1)}
            print(f'bag {name} {mode}: max diff vs official '
                  f'{rows[mode]["max_box_diff_vs_official_px"]:.4g} px ({seconds:.0f} s)',
                  flush=True)
        for mode in precision.PRECISIONS:
            diff = np.max(np.abs(boxes[mode] - boxes['float32']), axis=1)
            rows[mode]['max_box_diff_vs_float32_px'] = float(diff.max())
            rows[mode]['per_frame_max_diff_vs_float32_px'] = np.round(diff, 5).tolist()
        part['trackers'][name] = {'config': config_name,
                                  'variables': f'converted parity bundle {bundle.name}',
                                  'modes': rows}
    return part


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', help='exported synthetic test folder (synthetic part)')
    parser.add_argument('--grm_checkpoint', default=None)
    parser.add_argument('--siamrpn_checkpoint', default=None)
    parser.add_argument('--sequences', type=int, default=30)
    parser.add_argument('--bag_frames', type=int, default=10)
    parser.add_argument('--parts', default='synthetic,bag')
    args = parser.parse_args()
    parts = [p for p in args.parts.split(',') if p]
    result = {'command': 'python benchmarks/precision_accuracy.py ' + ' '.join(sys.argv[1:]),
              'modes': list(precision.PRECISIONS)}
    if 'synthetic' in parts:
        if not args.root:
            parser.error('--root (the exported synthetic test folder) is needed for the '
                         'synthetic part')
        result['synthetic'] = synthetic_part(args)
    if 'bag' in parts:
        result['bag'] = bag_part(args)
    result.update(machine=machine(), date=time.strftime('%Y-%m-%d %H:%M:%S'))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / 'precision_accuracy.json'
    path.write_text(json.dumps(result, indent=2) + '\n')
    print(f'written: {path}')


if __name__ == '__main__':
    main()
