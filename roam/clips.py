"""ROAM meta-training clips (datasets.BaseDataset.__getitem__ of tyyyang/ROAM), host side.

A clip is `clip_length` (31) consecutive *visible* frames of one track, starting uniformly at
random: the first frame becomes n_init = 9 samples (aspect r in init_aug_ratios x scale s in
init_aug_scales), each later frame one sample with r, s ~ U(0.8, 1.2). Aspect augmentation
resizes the whole frame to (int(W r), int(H / r)) (cv2 bilinear) and the box by
(r, 1/r, r, 1/r); scale augmentation divides the search scale: 5 / s. Every sample is shifted by
a random integer offset o ~ U[-offset_range, offset_range) per axis in patch pixels:

    window = search_window(box wh, search_scale)           (odd)
    scale  = crop_size / window
    centre = (x, y) + floor((w, h) / 2) - o / scale         (image px)
    crop   = get_search_patch(image, centre, window, crop_size)  (roam.crop, float32)
    box    = (o_x, o_y, round(w scale), round(h scale))     (cx, cy, w, h patch px)
    label  = gaussian_label(0.1 ceil(box wh / 4), M, floor(M/2) + o // 4)

Crops are stored as uint8 (rounded; the official feeds the float crop, at most 0.5 away; the
bundle's meta.npz stores the rounded crops the same way).

Randomness: sample `index` draws everything from numpy default_rng([seed, index]) -- the
sequence, the start, the offsets, aspects and scales, the look-ahead offsets `deltas` [T] in
[0, tau) (ROAM.forward's np.random.randint(5) per step) and `scale_key` uint32 [2], the
explicit JAX key of the clip's Random Filter Scaling draw (roam.meta.batch_meta_loss). So batch
s is a pure function of (seed, s) (tracking/data/pipeline.py).
"""
from __future__ import annotations

from typing import Iterator, Sequence as Seq

import cv2
import numpy as np

from roam.crop import get_search_patch, search_window
from tracking.data.index import as_frame_table, usable_mask
from tracking.data.pipeline import ArraySpec, sample_batches


def training_example(image, box_xywh, search_scale: float, offset, config):
    """One sample (BaseDataset._generate_training_examples): image [H, W, 3] RGB, box (x, y,
    w, h) on it, offset int [2] (x, y) patch px. Returns (crop float32 [C, C, 3] in 0..255,
    label float32 [M, M], box float32 [4] (cx, cy, w, h) patch px)."""
    m = config.model
    box = np.asarray(box_xywh, np.float64)
    offset = np.asarray(offset, np.int64)
    window = search_window(box[2:], search_scale)
    scale = m.crop_size / window
    centre = box[:2] + np.floor(box[2:] / 2) - offset / scale
    crop = get_search_patch(image, centre, window, m.crop_size, m.rgb_mean)
    scaled = np.round(box * scale)
    sigma = np.ceil(scaled[2:] / m.cell_size) * m.output_sigma_factor
    centre_cells = np.floor(m.map_size / 2) + offset // m.cell_size
    label = gaussian_label_np(sigma, m.map_size, centre_cells, m.alpha)
    out_box = np.concatenate([offset.astype(np.float32), scaled[2:].astype(np.float32)])
    return crop, label, out_box


def gaussian_label_np(sigma, map_size: int, centre, alpha: float) -> np.ndarray:
    """utils.gaussian_shaped_labels on the host (numpy float64, then float32; the jnp twin is
    roam.model.gaussian_label): [M, M], exp(-alpha ((x - cx)^2 / sx^2 + (y - cy)^2 / sy^2)),
    sigma (sx, sy) and centre (cx, cy) in cells."""
    v = np.arange(map_size, dtype=np.float64)
    xs = (v - centre[0])[None, :]
    ys = (v - centre[1])[:, None]
    return np.exp(-alpha * (xs ** 2 / sigma[0] ** 2 + ys ** 2 / sigma[1] ** 2)).astype(np.float32)


def colour_augment(crops, rng) -> np.ndarray:
    """One colour transform for the whole clip (tiny only; not in the official code): the RGB
    channels permuted and each inverted (255 - x) with probability 1/2, 48 variants. The
    target and its look-alike distractors keep their contrast, but a theta0 cannot memorise the
    training targets' colours: the first-frame step has to pick them up. Drawn after every
    other draw of the clip, so the clip is otherwise the same. crops uint8 [S, C, C, 3]."""
    perm = rng.permutation(3)
    invert = rng.integers(0, 2, 3).astype(bool)
    out = crops[..., perm]
    return np.where(invert, 255 - out, out).astype(np.uint8)


def _aspect(image, box, ratio: float):
    h, w = image.shape[:2]
    resized = cv2.resize(image, (int(w * ratio), int(h / ratio)))
    return resized, np.asarray(box, np.float64) * np.array([ratio, 1 / ratio, ratio, 1 / ratio])


def clip_spec(config) -> dict:
    """ArraySpec of one clip sample (S = n_init + clip_length - 1)."""
    from roam.meta import clip_samples
    m, t = config.model, config.train
    s = clip_samples(config)
    return {'crops': ArraySpec((s, m.crop_size, m.crop_size, 3), np.uint8),
            'labels': ArraySpec((s, m.map_size, m.map_size), np.float32),
            'boxes': ArraySpec((s, 4), np.float32),
            'deltas': ArraySpec((int(t.time_step),), np.int32),
            'scale_key': ArraySpec((2,), np.uint32),
            'index': ArraySpec((), np.int64)}


class ClipSampler:
    """sample(index) -> one clip dict (`clip_spec`), pure in (seed, index).

    tables: per dataset a list of Sequence or a DatasetIndex; ratios: sampling weight per
    dataset. Only tracks with at least max(clip_length, data.min_track_length) visible frames
    with a usable box are drawn (make_vid_info.py keeps tracks of >= 50)."""

    def __init__(self, tables: Seq, ratios: Seq[float], config, seed: int):
        self.config = config
        self.seed = int(seed)
        t = config.train
        self.clip_length = int(t.clip_length)
        need = max(self.clip_length, int(config.data.get('min_track_length', 0)))
        self.tables = [as_frame_table(x) for x in tables]
        self.eligible = [np.flatnonzero(tb.usable_counts() >= need) for tb in self.tables]
        if len(ratios) != len(self.tables):
            raise ValueError(f'roam clips: {len(self.tables)} datasets but {len(ratios)} ratios')
        w = np.asarray(ratios, np.float64) * np.asarray([len(e) > 0 for e in self.eligible])
        if w.sum() <= 0:
            raise ValueError(f'roam clips: no track has {need} visible frames with a usable box '
                             f'in any of the {len(self.tables)} datasets')
        self.weights = w / w.sum()

    def sample(self, index: int) -> dict:
        cfg, t = self.config, self.config.train
        rng = np.random.default_rng([self.seed, int(index)])
        d = int(rng.choice(len(self.tables), p=self.weights))
        table = self.tables[d]
        s = int(self.eligible[d][rng.integers(len(self.eligible[d]))])
        boxes = np.asarray(table.boxes(s), np.float64)
        frames = np.flatnonzero(usable_mask(boxes, table.visible(s)))
        start = int(rng.integers(len(frames) - self.clip_length + 1))
        chosen = frames[start:start + self.clip_length]
        lo, hi = -int(t.offset_range), int(t.offset_range)
        search = float(cfg.model.search_scale)
        crops, labels, out_boxes = [], [], []

        def add(image, box, scale):
            offset = rng.integers(lo, hi, 2)
            crop, label, b = training_example(image, box, search / scale, offset, cfg)
            crops.append(np.clip(np.round(crop), 0, 255).astype(np.uint8))
            labels.append(label)
            out_boxes.append(b)

        try:
            image = table.frame(s, int(chosen[0]))
            for ratio in t.init_aug_ratios:
                resized, box = _aspect(image, boxes[chosen[0]], ratio)
                for scale in t.init_aug_scales:
                    add(resized, box, scale)
            for i in chosen[1:]:
                ratio = rng.uniform(*t.aug_ratios_range)
                resized, box = _aspect(table.frame(s, int(i)), boxes[i], ratio)
                add(resized, box, rng.uniform(*t.aug_scales_range))
        except Exception as e:
            raise type(e)(f'roam clip {index}: dataset {d}, sequence {table.name(s)!r}: {e}') \
                from e
        deltas = rng.integers(0, int(t.look_ahead), int(t.time_step)).astype(np.int32)
        key = rng.integers(0, 2 ** 32, 2, dtype=np.uint64).astype(np.uint32)
        crops = np.stack(crops)
        if t.get('colour_augment', False):
            crops = colour_augment(crops, rng)
        return {'crops': crops, 'labels': np.stack(labels),
                'boxes': np.stack(out_boxes), 'deltas': deltas, 'scale_key': key,
                'index': np.int64(index)}


def train_batches(tables: Seq, ratios: Seq[float], config, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1) -> Iterator[dict]:
    """Endless iterator of this process's rows of every global batch of clips (pipeline.py)."""
    sampler = ClipSampler(tables, ratios, config, seed)
    data = config.data
    return sample_batches(sampler.sample, clip_spec(config), int(config.train.batch_size),
                          start_step, process_index, process_count,
                          int(data.num_parallel_calls), int(data.prefetch))
