"""Training pairs for one-template trackers: the 'causal' sampler, processing and augmentation.

Sample k of a run is a pure function of (seed, k): attempt a of sample k draws everything from
`numpy.random.default_rng([seed, k, a])`, and an attempt that is rejected (crop under 1 px, or a
crop that is all padding, also at the token-grid resolution) moves to attempt a + 1. Batch s
holds samples s * B ... s * B + B - 1, so a run resumed at step s yields exactly the batches an
uninterrupted run yields from step s on, and with P processes process p yields rows
[p B / P, (p + 1) B / P) of every global batch.

Per sample (GRM/OSTrack 'causal' mode, see docs/grm.md / the spec section 5):
  1. a dataset by ratio; a sequence with > 4 usable frames and >= 20 frames (a one-frame
     sequence, e.g. a COCO image, is usable when its box is; it gives template = search frame);
  2. template frame: uniform among usable frames with index < len - 1; search frame: uniform among
     usable frames in (t, t + max_gap + g) (upper bound excluded), g = 0, 5, 10, ... the smallest
     that contains one;
  3. joint augmentation: grey (p = gray_prob) and horizontal flip of both full frames
     (p = flip_prob);
  4. per crop: box jitter (size *= exp(N(0, 1) scale_jitter) per w/h; centre += sqrt(w'h')
     center_jitter U(-0.5, 0.5) per axis), `sample_target` crop, rejection, brightness factor
     U(1 - b, 1 + b) (clipped to 0..255), horizontal flip of the crop (p = crop_flip_prob).
Usable frame: finite box with w, h > 0 and (if the sequence says) visible.
"""
from __future__ import annotations

import logging
import math
from typing import Iterator, Sequence as Seq

import cv2
import numpy as np

from tracking.crops import crop_window, sample_target
from tracking.data.index import as_frame_table, usable_mask
from tracking.data.sequence import Sequence
from tracking.data.targets import gaussian_heatmap

MIN_SEQUENCE_LENGTH = 20
MIN_USABLE_FRAMES = 5          # "more than 4 visible frames"
GAP_INCREASE = 5
MAX_ATTEMPTS = 100


def usable_frames(sequence: Sequence) -> np.ndarray:
    """[T] bool: the frame has a finite box with w, h > 0 and is visible (if known)."""
    return usable_mask(sequence.boxes, sequence.visible)


def is_usable(sequence: Sequence, usable: np.ndarray) -> bool:
    """One-frame sequences (images) need a usable frame; videos >= 20 frames and > 4 usable."""
    return bool(usable_sequences(np.array([len(sequence)]), np.array([usable.sum()]))[0])


def usable_sequences(lengths: np.ndarray, usable_counts: np.ndarray) -> np.ndarray:
    """[S] bool `is_usable` from [S] frame counts and [S] usable-frame counts."""
    lengths, usable_counts = np.asarray(lengths), np.asarray(usable_counts)
    return np.where(lengths == 1, usable_counts >= 1,
                    (lengths >= MIN_SEQUENCE_LENGTH) & (usable_counts >= MIN_USABLE_FRAMES))


def search_window(template_id: int, later_ids: np.ndarray, max_gap: int) -> np.ndarray:
    """Usable frame ids in (template_id, template_id + max_gap + g) for the smallest g in 0, 5, ...

    later_ids: sorted usable frame ids > template_id (non-empty).
    """
    gap = int(later_ids[0]) - template_id
    increase = 0 if gap < max_gap else GAP_INCREASE * math.ceil((gap - max_gap + 1) / GAP_INCREASE)
    return later_ids[later_ids < template_id + max_gap + increase]


def jitter_box(rng: np.random.Generator, box_xywh: np.ndarray, center_jitter: float,
               scale_jitter: float) -> np.ndarray:
    """[4] float64 jittered (x, y, w, h): size *= exp(N(0,1) scale_jitter) per w/h; centre +=
    sqrt(w' h') center_jitter U(-0.5, 0.5) per axis."""
    box = np.asarray(box_xywh, np.float64)
    size = box[2:] * np.exp(rng.standard_normal(2) * scale_jitter)
    max_offset = math.sqrt(size[0] * size[1]) * center_jitter
    centre = box[:2] + 0.5 * box[2:] + max_offset * (rng.random(2) - 0.5)
    return np.concatenate([centre - 0.5 * size, size])


def box_in_crop(box_xywh: np.ndarray, crop_box_xywh: np.ndarray, factor: float) -> np.ndarray:
    """[4] float32 box as fractions of the `sample_target` crop taken around `crop_box_xywh`.

    The crop covers image pixels [x1, x1 + crop_sz) (see `tracking.crops.crop_window`) and
    cv2's resize maps image coordinate u to crop coordinate (u - x1) * out / crop_sz, so the
    normalised box is ((x - x1) / crop_sz, (y - y1) / crop_sz, w / crop_sz, h / crop_sz).
    """
    x1, y1, crop_sz = crop_window(crop_box_xywh, factor)
    box = np.asarray(box_xywh, np.float64)
    return ((box - np.array([x1, y1, 0, 0])) / crop_sz).astype(np.float32)


def _all_padding_on_grid(pad_mask: np.ndarray, grid: int) -> bool:
    """Nearest downsampling of [S, S] to [grid, grid] (index floor(i S / grid)), all True?"""
    idx = (np.arange(grid) * pad_mask.shape[0]) // grid
    return bool(pad_mask[np.ix_(idx, idx)].all())


class PairSampler:
    """Draws template/search training pairs; `sample(k)` is a pure function of (seed, k).

    sequences_per_dataset: one frame table per dataset: a `tracking.data.index.DatasetIndex`
    (the training sets on disk) or a list of Sequences; ratios: one weight per dataset.
    Only the ids of the usable sequences are kept per dataset; boxes and frames are read from
    the table when a sample needs them. data_config: `config.data` (max_gap, *_center_jitter, *_scale_jitter, gray_prob, flip_prob,
    crop_flip_prob, brightness_jitter). model_config: `config.model` (template_size,
    search_size, template_factor, search_factor, patch_size).
    """

    def __init__(self, sequences_per_dataset: Seq[Seq[Sequence]], ratios: Seq[float],
                 data_config, model_config, seed: int):
        if len(sequences_per_dataset) != len(ratios):
            raise ValueError(f'pairs: {len(sequences_per_dataset)} datasets but {len(ratios)} '
                             f'ratios')
        self.seed = int(seed)
        self.data = data_config
        self.model = model_config
        self.datasets, weights = [], []
        for d, (sequences, ratio) in enumerate(zip(sequences_per_dataset, ratios)):
            if ratio < 0:
                raise ValueError(f'pairs: negative ratio {ratio} for dataset {d}')
            table = as_frame_table(sequences)
            kept = np.flatnonzero(usable_sequences(table.lengths(), table.usable_counts()))
            if len(kept) < len(table):
                logging.info('pairs: dataset %d: %d of %d sequences have too few usable frames '
                             'and are skipped', d, len(table) - len(kept), len(table))
            if not len(kept) or ratio == 0:
                if len(table) and ratio > 0:
                    logging.warning('pairs: dataset %d has no usable sequence (first: %s); it is '
                                    'skipped', d, table.name(0))
                continue
            self.datasets.append((table, kept))
            weights.append(float(ratio))
        if not self.datasets:
            names = [t.name(s) for t in map(as_frame_table, sequences_per_dataset)
                     for s in range(min(len(t), 5))][:5]
            raise ValueError(
                'pairs: no usable sequence in any dataset (a video needs >= '
                f'{MIN_SEQUENCE_LENGTH} frames and >= {MIN_USABLE_FRAMES} visible frames with '
                f'finite positive boxes; an image needs a valid box); sequences seen: {names}')
        self.probs = np.asarray(weights) / np.sum(weights)
        self.grids = {'template': model_config.template_size // model_config.patch_size,
                      'search': model_config.search_size // model_config.patch_size}

    # -- frames ------------------------------------------------------------------------------

    def _frame_ids(self, rng: np.random.Generator, usable: np.ndarray):
        """(template id, search id) or None when the template has no later usable frame.

        usable: [T] bool usable frames of the drawn sequence."""
        if len(usable) == 1:
            return 0, 0
        template_id = int(rng.choice(np.flatnonzero(usable[:-1])))
        later = np.flatnonzero(usable[template_id + 1:]) + template_id + 1
        if later.size == 0:
            return None
        return template_id, int(rng.choice(search_window(template_id, later,
                                                          int(self.data.max_gap))))

    def _crop(self, rng: np.random.Generator, image: np.ndarray, box: np.ndarray, kind: str):
        """One processed crop: (crop uint8 [S, S, 3], box [4] float32 normalised) or None."""
        data, model = self.data, self.model
        factor = float(getattr(model, f'{kind}_factor'))
        out_size = int(getattr(model, f'{kind}_size'))
        jittered = jitter_box(rng, box, float(getattr(data, f'{kind}_center_jitter')),
                              float(getattr(data, f'{kind}_scale_jitter')))
        if not np.all(np.isfinite(jittered)) or \
                math.ceil(math.sqrt(jittered[2] * jittered[3]) * factor) < 1:
            return None
        crop, _, pad_mask = sample_target(image, jittered, factor, out_size)
        if pad_mask.all() or _all_padding_on_grid(pad_mask, self.grids[kind]):
            return None
        box_norm = box_in_crop(box, jittered, factor)
        b = float(data.brightness_jitter)
        brightness = rng.uniform(max(0.0, 1.0 - b), 1.0 + b)
        crop = np.clip(np.rint(crop.astype(np.float32) * brightness), 0, 255).astype(np.uint8)
        if rng.random() < float(data.crop_flip_prob):
            crop = crop[:, ::-1]
            box_norm[0] = 1.0 - box_norm[0] - box_norm[2]
        return np.ascontiguousarray(crop), box_norm

    def _attempt(self, rng: np.random.Generator):
        d = int(rng.choice(len(self.datasets), p=self.probs))
        table, kept = self.datasets[d]
        s = int(kept[int(rng.integers(len(kept)))])
        seq_boxes = table.boxes(s)
        ids = self._frame_ids(rng, usable_mask(seq_boxes, table.visible(s)))
        if ids is None:
            return None
        images = [table.frame(s, i) for i in ids]
        boxes = [np.asarray(seq_boxes[i], np.float64) for i in ids]
        if rng.random() < float(self.data.gray_prob):
            images = [np.repeat(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[..., None], 3, -1)
                      for im in images]
        if rng.random() < float(self.data.flip_prob):
            images = [im[:, ::-1] for im in images]
            boxes = [np.array([im.shape[1] - b[0] - b[2], b[1], b[2], b[3]])
                     for im, b in zip(images, boxes)]
        template = self._crop(rng, images[0], boxes[0], 'template')
        if template is None:
            return None
        search = self._crop(rng, images[1], boxes[1], 'search')
        if search is None:
            return None
        return template, search

    def sample(self, index: int) -> dict:
        """Sample `index`: template [Ht, Wt, 3] uint8, search [Hs, Ws, 3] uint8, template_box /
        search_box [4] float32 normalised xywh, heatmap [F, F] float32, index int64."""
        index = int(index)
        for attempt in range(MAX_ATTEMPTS):
            result = self._attempt(np.random.default_rng([self.seed, index, attempt]))
            if result is not None:
                (template, template_box), (search, search_box) = result
                heatmap = gaussian_heatmap(search_box[None], self.grids['search'])[0]
                return dict(template=template, search=search, template_box=template_box,
                            search_box=search_box, heatmap=heatmap, index=np.int64(index))
        raise RuntimeError(f'pairs: sample {index} (seed {self.seed}): every one of '
                           f'{MAX_ATTEMPTS} attempts was rejected (crops all padding?)')


_KEYS = ('template', 'search', 'template_box', 'search_box', 'heatmap', 'index')


def train_batches(sequences_per_dataset: Seq[Seq[Sequence]], ratios: Seq[float], data_config,
                  model_config, global_batch: int, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1) -> Iterator[dict]:
    """Endless iterator of this process's rows of every global batch, from `start_step` on.

    Yields dicts of numpy arrays with B = global_batch / process_count rows:
      template [B, Ht, Wt, 3] uint8, search [B, Hs, Ws, 3] uint8, template_box / search_box
      [B, 4] float32 (x, y, w, h) as fractions of the crop, heatmap [B, F, F] float32
      (F = search_size // patch_size), index [B] int64 global sample indices.
    See `tracking.data.pipeline.sample_batches` for the tf.data plumbing.
    """
    from tracking.data.pipeline import ArraySpec, sample_batches

    sampler = PairSampler(sequences_per_dataset, ratios, data_config, model_config, seed)
    t_size, s_size = int(model_config.template_size), int(model_config.search_size)
    grid = s_size // int(model_config.patch_size)
    spec = dict(template=ArraySpec((t_size, t_size, 3), np.uint8),
                search=ArraySpec((s_size, s_size, 3), np.uint8),
                template_box=ArraySpec((4,), np.float32), search_box=ArraySpec((4,), np.float32),
                heatmap=ArraySpec((grid, grid), np.float32), index=ArraySpec((), np.int64))
    return sample_batches(sampler.sample, spec, global_batch, start_step, process_index,
                          process_count, int(data_config.num_parallel_calls),
                          int(data_config.prefetch))
