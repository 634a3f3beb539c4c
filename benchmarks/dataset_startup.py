"""Start-up time and resident memory of the training sets: eager readers vs the dataset index.

    python benchmarks/dataset_startup.py [--tmp /tmp] [--scale 0.1] [--keep]

Generates GOT-10k train, LaSOT train, TrackingNet train (TRAIN_0..11) and COCO train2017
trees at `scale` times their real sizes (sequence counts; frames per sequence and objects per
image as in the real sets) in a temporary folder under --tmp (removed at the end unless
--keep). The trees hold real-format annotation files and NO image files: neither path lists
or opens a frame (the eager readers build frame paths from the annotation line counts; the
index reads annotation files only), which a run without images proves.

Each measurement runs in a fresh subprocess (imports, then the timer): load the four sets and
build the GRM `PairSampler` over them ('eager': `load_training_set`, lists of Sequence;
'cold': `load_training_index` with an empty cache, i.e. the one-off build; 'warm': the same
with the index present, what every training process does afterwards). Reported per mode:
seconds, VmRSS after start-up and VmHWM (peak) from /proc/self/status, and RSS after the
imports alone (jax, cv2, numpy: the floor of any training process). The full-size numbers are
a linear extrapolation (divide the data-dependent part by `scale`), labelled as such.
Writes benchmarks/results/dataset_startup.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / 'benchmarks' / 'results' / 'dataset_startup.json'

# Real sizes (official releases): sequences and mean frames per sequence; COCO images/objects.
GOT10K_TRAIN = dict(sequences=9335, mean_frames=150)      # ~1.4 M frames
LASOT_TRAIN = dict(sequences=1120, mean_frames=2500)      # ~2.8 M frames (3.5 M with test)
TRACKINGNET_TRAIN = dict(sequences=30132, mean_frames=471)  # ~14.2 M frames, 12 chunks
COCO_TRAIN = dict(images=118287, objects=860001)          # instances_train2017.json

LASOT_CATEGORIES = 70


def _lengths(rng, count, mean):
    """Sequence lengths around `mean` (uniform 0.3 mean .. 1.7 mean), at least 20."""
    return np.maximum(20, rng.integers(int(0.3 * mean), int(1.7 * mean) + 1, count))


def _box_lines(rng, count, fmt):
    xy = rng.uniform(0, 600, (count, 2))
    wh = rng.uniform(10, 200, (count, 2))
    return ''.join(fmt.format(*row) for row in np.concatenate([xy, wh], 1).round(0)) if count \
        else ''


def make_trees(base: Path, scale: float, seed: int = 0) -> dict:
    """Annotation-only trees of the four sets at `scale`; returns roots and their sizes."""
    from tracking.data.benchmarks import LASOT_TEST_SEQUENCES
    rng = np.random.default_rng(seed)
    info = {}
    got = base / 'got10k' / 'train'
    got.mkdir(parents=True)
    count = max(1, round(GOT10K_TRAIN['sequences'] * scale))
    names = [f'GOT-10k_Train_{k:06d}' for k in range(1, count + 1)]
    lengths = _lengths(rng, count, GOT10K_TRAIN['mean_frames'])
    for name, n in zip(names, lengths):
        seq = got / name
        seq.mkdir()
        (seq / 'groundtruth.txt').write_text(_box_lines(rng, n, '{:.4f},{:.4f},{:.4f},{:.4f}\n'))
        absent = rng.random(n) < 0.05
        (seq / 'absence.label').write_text(''.join(f'{int(a)}\n' for a in absent))
        (seq / 'cover.label').write_text(''.join(f'{0 if a else rng.integers(1, 9)}\n'
                                                 for a in absent))
        (seq / 'meta_info.ini').write_text('[METAINFO]\nresolution: (1280, 720)\n')
    (got / 'list.txt').write_text('\n'.join(names) + '\n')
    info['got10k_train'] = dict(root=str(base / 'got10k'), sequences=count,
                                frames=int(lengths.sum()))

    lasot = base / 'lasot'
    test = set(LASOT_TEST_SEQUENCES)
    categories = sorted({n.rsplit('-', 1)[0] for n in test})[:LASOT_CATEGORIES]
    count = max(1, round(LASOT_TRAIN['sequences'] * scale))
    train_names = [f'{c}-{k}' for k in range(1, 21) for c in categories
                   if f'{c}-{k}' not in test][:count]
    lengths = _lengths(rng, count, LASOT_TRAIN['mean_frames'])
    for name, n in zip(train_names, lengths):
        seq = lasot / name.rsplit('-', 1)[0] / name
        seq.mkdir(parents=True)
        (seq / 'groundtruth.txt').write_text(_box_lines(rng, n, '{:.0f},{:.0f},{:.0f},{:.0f}\n'))
        for file in ('full_occlusion.txt', 'out_of_view.txt'):
            (seq / file).write_text(','.join('1' if f else '0' for f in rng.random(n) < 0.05))
    info['lasot'] = dict(root=str(lasot), sequences=count, frames=int(lengths.sum()))

    tn = base / 'trackingnet'
    count = max(12, round(TRACKINGNET_TRAIN['sequences'] * scale))
    lengths = _lengths(rng, count, TRACKINGNET_TRAIN['mean_frames'])
    for k, n in enumerate(lengths):
        anno = tn / f'TRAIN_{k % 12}' / 'anno'
        anno.mkdir(parents=True, exist_ok=True)
        (anno / f'{k:05d}_video_{k}.txt').write_text(
            _box_lines(rng, n, '{:.1f},{:.1f},{:.1f},{:.1f}\n'))
    info['trackingnet'] = dict(root=str(tn), sequences=count, frames=int(lengths.sum()))

    coco = base / 'coco'
    (coco / 'annotations').mkdir(parents=True)
    images = max(1, round(COCO_TRAIN['images'] * scale))
    objects = max(1, round(COCO_TRAIN['objects'] * scale))
    image_of = rng.integers(1, images + 1, objects)
    boxes = np.concatenate([rng.uniform(0, 500, (objects, 2)), rng.uniform(1, 200, (objects, 2))],
                           1).round(2)
    data = dict(
        info={}, licenses=[], categories=[dict(id=c, name=f'c{c}') for c in range(1, 91)],
        images=[dict(id=i, file_name=f'{i:012d}.jpg', width=640, height=480,
                     license=1, date_captured='2013-11-14 17:02:52') for i in range(1, images + 1)],
        annotations=[dict(id=int(a + 1), image_id=int(image_of[a]), category_id=int(a % 90 + 1),
                          iscrowd=int(a % 100 == 0), area=float(boxes[a, 2] * boxes[a, 3]),
                          bbox=boxes[a].tolist(),
                          segmentation=[(boxes[a, [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]]
                                         + rng.uniform(0, 50, 12)).round(2).tolist()])
                     for a in range(objects)])
    json_path = coco / 'annotations' / 'instances_train2017.json'
    json_path.write_text(json.dumps(data))
    info['coco'] = dict(root=str(coco), sequences=int(objects - (np.arange(objects) % 100 == 0)
                                                       .sum()), frames=None, images=images,
                        json_mb=round(json_path.stat().st_size / 2**20, 1))
    info['coco']['frames'] = info['coco']['sequences']
    return info


def _status_mb(key: str) -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


SETS = ('got10k_train', 'lasot', 'trackingnet', 'coco')


def measure(mode: str, roots: dict, cache: str) -> dict:
    """One start-up in this (fresh) process: load the four sets, build the GRM PairSampler."""
    t0 = time.perf_counter()
    sys.path.insert(0, str(REPO))
    from tracking.config import load_config
    from tracking.data import datasets
    from tracking.data.pairs import PairSampler
    imports_s = time.perf_counter() - t0
    rss_imports = _status_mb('VmRSS')
    config = load_config(str(REPO / 'configs' / 'grm.py') + ':tiny')
    t1 = time.perf_counter()
    if mode == 'eager':
        data = [datasets.load_training_set(n, roots[n]) for n in SETS]
    else:
        data = [datasets.load_training_index(n, roots[n], cache) for n in SETS]
    load_s = time.perf_counter() - t1
    sampler = PairSampler(data, [1.0] * len(SETS), config.data, config.model, seed=0)
    startup_s = time.perf_counter() - t1
    rss = _status_mb('VmRSS')
    # per-sample access (box + frame path of a random usable sequence), no image read
    rng = np.random.default_rng(0)
    t2 = time.perf_counter()
    for _ in range(10000):
        d = int(rng.integers(len(sampler.datasets)))
        table, kept = sampler.datasets[d]
        s = int(kept[int(rng.integers(len(kept)))])
        if mode == 'eager':
            table.sequences[s].frames[0], table.boxes(s)[0]
        else:
            table.frame_path(s, 0), table.boxes(s)[0]
    lookup_us = (time.perf_counter() - t2) / 10000 * 1e6
    return dict(mode=mode, imports_s=round(imports_s, 2), load_s=round(load_s, 2),
                startup_s=round(startup_s, 2), rss_after_imports_mb=round(rss_imports, 1),
                rss_mb=round(rss, 1), peak_rss_mb=round(_status_mb('VmHWM'), 1),
                lookup_us=round(lookup_us, 1),
                sequences=[len(t) for t, _ in sampler.datasets],
                usable=[len(k) for _, k in sampler.datasets])


def _run(mode: str, roots: dict, cache: str) -> dict:
    out = subprocess.run([sys.executable, __file__, '--measure', mode, '--roots',
                          json.dumps(roots), '--cache', cache], capture_output=True, text=True,
                         cwd=REPO)
    if out.returncode:
        raise RuntimeError(f'{mode} run failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def _extrapolate(result: dict, scale: float) -> dict:
    """Full size: data-dependent seconds and MB divided by scale (imports unchanged)."""
    return dict(startup_s=round(result['startup_s'] / scale, 1),
                rss_mb=round(result['rss_after_imports_mb']
                              + (result['rss_mb'] - result['rss_after_imports_mb']) / scale),
                peak_rss_mb=round(result['rss_after_imports_mb']
                                  + (result['peak_rss_mb'] - result['rss_after_imports_mb'])
                                  / scale))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tmp', default=tempfile.gettempdir(),
                        help='folder for the generated trees (a temporary sub-folder is removed)')
    parser.add_argument('--scale', type=float, default=0.1, help='fraction of the real sizes')
    parser.add_argument('--keep', action='store_true', help='keep the generated trees')
    parser.add_argument('--measure', help=argparse.SUPPRESS)
    parser.add_argument('--roots', help=argparse.SUPPRESS)
    parser.add_argument('--cache', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, json.loads(args.roots), args.cache)))
        return

    sys.path.insert(0, str(REPO))
    base = Path(tempfile.mkdtemp(prefix='dataset_startup-', dir=args.tmp))
    try:
        t0 = time.perf_counter()
        info = make_trees(base / 'data', args.scale)
        generate_s = time.perf_counter() - t0
        files = sum(len(f) for _, _, f in os.walk(base / 'data'))
        mb = sum(p.stat().st_size for p in (base / 'data').rglob('*') if p.is_file()) / 2**20
        print(f'trees at scale {args.scale}: {files} files, {mb:.0f} MB, {generate_s:.0f} s; '
              f'{json.dumps({k: (v["sequences"], v["frames"]) for k, v in info.items()})}',
              flush=True)
        roots = {k: v['root'] for k, v in info.items()}
        cache = str(base / 'index_cache')
        runs = {}
        for mode in ('eager', 'cold', 'warm'):
            runs[mode] = _run(mode, roots, cache)
            print(mode, json.dumps(runs[mode]), flush=True)
        index_mb = sum(p.stat().st_size for p in Path(cache).rglob('*.npy')) / 2**20
        result = dict(
            command=f'python benchmarks/dataset_startup.py --scale {args.scale}',
            scale=args.scale, trees={k: {kk: vv for kk, vv in v.items() if kk != 'root'}
                                     for k, v in info.items()},
            tree_files=files, tree_mb=round(mb, 1), image_files=0,
            index_mb=round(index_mb, 1), runs=runs,
            full_size_linear_extrapolation={m: _extrapolate(r, args.scale)
                                            for m, r in runs.items()},
            machine=dict(cpus=os.cpu_count(), python=sys.version.split()[0]),
            notes='Each mode in a fresh subprocess; startup_s = load the 4 sets + build the GRM '
                  'PairSampler (after imports); rss from /proc/self/status VmRSS/VmHWM. '
                  'No image files exist: neither path opens or lists frames.')
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(result, indent=1) + '\n')
        print(f'wrote {RESULT}')
        print(json.dumps(result['full_size_linear_extrapolation'], indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
