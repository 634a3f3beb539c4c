"""The synthetic set as a folder of frames: export a TFDS split once, read it back without TF.

Evaluation should not need TensorFlow (eval.py, the trackers and the models import without it),
but the synthetic set is a TFDS dataset. `export_synthetic` writes one split (needs TF/TFDS, once)
to an OTB-like folder, and `synthetic_folder_entries` reads it back with numpy and OpenCV only:

    <root>/synthetic_export.json            {"format": 1, "split", "config", "sequences": {name:
                                             {"num_frames", "image_size": [W, H], "seed"}}}
    <root>/<name>/img/00001.png ...          frames, RGB, lossless (the decoded TFDS JPEGs, so
                                             the pixels are exactly those load_synthetic gives)
    <root>/<name>/groundtruth_rect.txt       x,y,w,h per frame, each value printed with 17
                                             significant digits (the float32 boxes exactly)
    <root>/<name>/visible.txt                1 / 0 per frame

    python -m tracking.data.synthetic_folder --split test --out /data/synthetic_test \
        [--data_dir TFDS_DIR] [--config default]
    python eval.py --benchmark synthetic --root /data/synthetic_test ...   (reads the folder)
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np

from tracking.data.sequence import Sequence

MARKER = 'synthetic_export.json'
FORMAT = 1


def is_synthetic_folder(root) -> bool:
    """True when `root` is a folder written by `export_synthetic` (it holds MARKER)."""
    return root is not None and (Path(root) / MARKER).is_file()


def write_sequence_folder(root, sequence: Sequence) -> None:
    """Writes one in-memory Sequence (frames [T, H, W, 3] uint8 RGB) under <root>/<name>/."""
    folder = Path(root) / sequence.name
    (folder / 'img').mkdir(parents=True, exist_ok=True)
    for index in range(len(sequence)):
        frame = np.asarray(sequence.frame(index))
        path = folder / 'img' / f'{index + 1:05d}.png'
        if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise OSError(f'cannot write frame {path}')
    rows = (','.join('%.17g' % v for v in box) for box in np.asarray(sequence.boxes, np.float64))
    (folder / 'groundtruth_rect.txt').write_text('\n'.join(rows) + '\n')
    visible = np.ones(len(sequence), bool) if sequence.visible is None else sequence.visible
    (folder / 'visible.txt').write_text(''.join('%d\n' % int(v) for v in visible))


def export_synthetic(split: str, out_root, data_dir: str | None = None, config: str = 'default',
                     num_sequences: int | None = None) -> Path:
    """Writes split `split` of the TFDS synthetic set (built into data_dir if needed; needs
    TensorFlow) to `out_root` in the layout of the module docstring. Returns out_root."""
    from tracking.data.synthetic import load_synthetic  # TF/TFDS: only here.
    sequences = load_synthetic(split, data_dir=data_dir, num_sequences=num_sequences,
                               config=config)
    return write_synthetic_folder(out_root, sequences, split, config)


def write_synthetic_folder(out_root, sequences, split: str, config: str = 'default') -> Path:
    """Writes in-memory synthetic Sequences (frames [T, H, W, 3] uint8, extra['image_size'])
    to `out_root`, the marker last (a folder with the marker is complete). Returns out_root."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    index = {}
    for sequence in sequences:
        write_sequence_folder(out_root, sequence)
        width, height = sequence.extra.get('image_size',
                                           np.shape(sequence.frame(0))[1::-1])
        index[sequence.name] = {'num_frames': len(sequence),
                                'image_size': [int(width), int(height)],
                                'seed': int(sequence.extra.get('seed', -1))}
    marker = {'format': FORMAT, 'split': split, 'config': config, 'sequences': index}
    tmp = out_root / (MARKER + '.tmp')
    tmp.write_text(json.dumps(marker, indent=1))
    os.replace(tmp, out_root / MARKER)
    return out_root


def _load(root: Path, name: str, info: dict) -> Sequence:
    folder = root / name
    gt_path = folder / 'groundtruth_rect.txt'
    if not gt_path.is_file():
        raise FileNotFoundError(f'ground truth not found: {gt_path}')
    try:
        boxes = np.loadtxt(gt_path, delimiter=',', dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ValueError(f'{gt_path}: {e}') from None
    num_frames = int(info['num_frames'])
    if boxes.shape != (num_frames, 4):
        raise ValueError(f'{gt_path}: expected {num_frames} lines of x,y,w,h, got array of '
                         f'shape {boxes.shape}')
    visible_path = folder / 'visible.txt'
    visible = None
    if visible_path.is_file():
        visible = np.loadtxt(visible_path, dtype=np.int64, ndmin=1).astype(bool)
        if visible.shape != (num_frames,):
            raise ValueError(f'{visible_path}: expected {num_frames} lines, got {visible.size}')
    frames = [str(folder / 'img' / f'{i + 1:05d}.png') for i in range(num_frames)]
    width, height = info['image_size']
    return Sequence(name=name, frames=frames, boxes=boxes, visible=visible,
                    extra={'seed': int(info.get('seed', -1)),
                           'image_size': (int(width), int(height))})


def synthetic_folder_entries(root, names=None) -> list:
    """[(name, loader)] of an exported folder (sorted by name, or `names` in that order; KeyError
    naming the unknown ones). Each loader reads its sequence's files only (no TF)."""
    root = Path(root)
    marker = json.loads((root / MARKER).read_text())
    if marker.get('format') != FORMAT:
        raise ValueError(f'{root / MARKER}: unknown format {marker.get("format")!r}')
    index = marker['sequences']
    if names is None:
        names = sorted(index)
    unknown = [n for n in names if n not in index]
    if unknown:
        raise KeyError(f'unknown synthetic sequences {unknown} in {root}')
    return [(n, lambda n=n: _load(root, n, index[n])) for n in names]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Export a synthetic split to a folder of frames.')
    parser.add_argument('--split', default='test')
    parser.add_argument('--out', required=True)
    parser.add_argument('--data_dir', default=None, help='TFDS data dir (default: the usual)')
    parser.add_argument('--config', default='default', choices=('default', 'small'))
    parser.add_argument('--num_sequences', type=int, default=None)
    args = parser.parse_args(argv)
    root = export_synthetic(args.split, args.out, args.data_dir, args.config, args.num_sequences)
    print(f'exported synthetic {args.split} to {root}')


if __name__ == '__main__':
    main()


__all__ = ['MARKER', 'export_synthetic', 'is_synthetic_folder', 'synthetic_folder_entries',
           'write_sequence_folder', 'write_synthetic_folder']
