"""pysot's training pairs (SiamRPN++, SiamAttn): positive and negative template/search pairs.

Sample k is a pure function of (seed, k): everything is drawn from
`numpy.random.default_rng([seed, k])`. Per sample (pysot `TrkDataset.__getitem__`):
  1. grey with probability `gray` (both images), negative pair with probability `neg`;
  2. a dataset by ratio and a sequence of it; positive pair: template frame uniform among the
     usable frames, search frame uniform among the usable frames at most `frame_range` usable
     frames away (template included, as pysot); negative pair: the template as above and the
     search a random usable frame of a random sequence of a random dataset;
  3. each frame is cut to pysot's 511 SiamFC crop (`augment.siamfc_crop`) and converted to BGR,
     then `augment.augment` gives the template (127) and the search (255) inputs.
A usable frame has a finite box with w, h > 0 and is visible (if the sequence says).
Differences from pysot: datasets are mixed by ratio instead of NUM_USE repetition lists, and
crops are cut from the frames online instead of read from pre-cropped files.
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence as Seq

import numpy as np

from tracking.data import augment as augment_lib
from tracking.data.index import as_frame_table, usable_mask
from tracking.data.sequence import Sequence

CROP_SIZE = 511


class PysotPairSampler:
    """Draws pysot training pairs; `sample(k)` is a pure function of (seed, k).

    sequences_per_dataset: one frame table per dataset: a `tracking.data.index.DatasetIndex`
    (the training sets on disk) or a list of Sequences; ratios: one weight per dataset;
    frame_ranges: max template-search distance per dataset, in usable frames.
    data_config: `config.data` with neg, gray, template / search augmentation sections
    (shift, scale, blur, flip, color). targets: optional `fn(rng, search_box, negative) -> dict`
    whose arrays are added to each sample (e.g. anchor labels). masks: also emit the search
    crop's target mask (SiamAttn): `search_mask` [search, search] uint8 0/1 cut and augmented
    with the same affine maps as the search image (flip included) and `has_mask` int32, 1 when
    the search frame has a mask (frame table `mask(s, i)` not None) and the pair is positive;
    zeros and 0 otherwise. Reading masks draws no random number (same pairs either way).
    """

    def __init__(self, sequences_per_dataset: Seq[Seq[Sequence]], ratios: Seq[float],
                 frame_ranges: Seq[int], data_config, template_size: int, search_size: int,
                 seed: int, targets: Callable | None = None, masks: bool = False):
        if not len(sequences_per_dataset) == len(ratios) == len(frame_ranges):
            raise ValueError(f'pysot pairs: {len(sequences_per_dataset)} datasets, '
                             f'{len(ratios)} ratios, {len(frame_ranges)} frame ranges')
        self.seed = int(seed)
        self.neg = float(data_config.neg)
        self.gray = float(data_config.gray)
        self.template_aug = augment_lib.AugmentParams.from_config(data_config.template)
        self.search_aug = augment_lib.AugmentParams.from_config(data_config.search)
        self.template_size, self.search_size = int(template_size), int(search_size)
        self.targets = targets
        self.masks = bool(masks)
        self.datasets, self.frame_ranges, weights = [], [], []
        for d, (sequences, ratio, frame_range) in enumerate(
                zip(sequences_per_dataset, ratios, frame_ranges)):
            if ratio < 0:
                raise ValueError(f'pysot pairs: negative ratio {ratio} for dataset {d}')
            table = as_frame_table(sequences)
            kept = np.flatnonzero(table.usable_counts() > 0)
            if len(kept) < len(table):
                logging.info('pysot pairs: dataset %d: %d of %d sequences have no usable frame',
                             d, len(table) - len(kept), len(table))
            if len(kept) and ratio > 0:
                self.datasets.append((table, kept))
                self.frame_ranges.append(int(frame_range))
                weights.append(float(ratio))
        if not self.datasets:
            names = [t.name(s) for t in map(as_frame_table, sequences_per_dataset)
                     for s in range(min(len(t), 5))][:5]
            raise ValueError('pysot pairs: no sequence with a usable frame (finite box, w, h > 0,'
                             f' visible) in any dataset; sequences seen: {names}')
        self.probs = np.asarray(weights) / np.sum(weights)

    def _pick(self, rng: np.random.Generator):
        """(dataset d, (table, sequence id s), usable frame ids of s)."""
        d = int(rng.choice(len(self.datasets), p=self.probs))
        table, kept = self.datasets[d]
        s = int(kept[int(rng.integers(len(kept)))])
        return d, (table, s), np.flatnonzero(usable_mask(table.boxes(s), table.visible(s)))

    def _frame_ids(self, rng: np.random.Generator, negative: bool):
        """(((table, s), template frame), ((table, s), search frame))."""
        d, sequence, ids = self._pick(rng)
        t = int(rng.integers(ids.size))
        if negative:
            _, other, other_ids = self._pick(rng)
            return (sequence, int(ids[t])), (other, int(rng.choice(other_ids)))
        frame_range = self.frame_ranges[d]
        window = ids[max(t - frame_range, 0):min(t + frame_range, ids.size - 1) + 1]
        return (sequence, int(ids[t])), (sequence, int(rng.choice(window)))

    @staticmethod
    def _crop(sequence: tuple, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """511 crop (BGR uint8) of one frame of sequence (table, s) and the target corners."""
        table, s = sequence
        image = table.frame(s, frame)
        crop, box = augment_lib.siamfc_crop(image, np.array(table.boxes(s)[frame]), CROP_SIZE)
        return np.ascontiguousarray(crop[..., ::-1]), box

    @staticmethod
    def _mask_crop(sequence: tuple, frame: int) -> np.ndarray | None:
        """511 crop (float32 0..1) of the target mask of one frame, None without a mask."""
        table, s = sequence
        mask_of = getattr(table, 'mask', None)
        mask = mask_of(s, frame) if mask_of is not None else None
        if mask is None:
            return None
        return augment_lib.siamfc_mask_crop(mask, np.array(table.boxes(s)[frame]), CROP_SIZE)

    def sample(self, index: int) -> dict:
        """Sample `index`: template [127, 127, 3] float32 and search [255, 255, 3] float32 (raw
        BGR values), search_box [4] float32 target corners in the search crop (for a negative
        pair: the box of the other target), negative int32 (1 for a negative pair), index
        int64, plus the `targets` arrays."""
        rng = np.random.default_rng([self.seed, int(index)])
        gray = bool(self.gray) and self.gray > rng.random()
        negative = bool(self.neg) and self.neg > rng.random()
        (t_seq, t_frame), (s_seq, s_frame) = self._frame_ids(rng, negative)
        t_image, t_box = self._crop(t_seq, t_frame)
        s_image, s_box = self._crop(s_seq, s_frame)
        template, _ = augment_lib.augment(rng, t_image, t_box, self.template_size,
                                          self.template_aug, gray)
        s_mask = self._mask_crop(s_seq, s_frame) if self.masks and not negative else None
        search, box, mask = augment_lib.augment_with_mask(rng, s_image, s_box, s_mask,
                                                          self.search_size, self.search_aug, gray)
        out = dict(template=template, search=search, search_box=box.astype(np.float32),
                   negative=np.int32(negative), index=np.int64(index))
        if self.masks:
            size = self.search_size
            out['search_mask'] = mask if mask is not None else np.zeros((size, size), np.uint8)
            out['has_mask'] = np.int32(mask is not None)
        if self.targets is not None:
            out.update(self.targets(rng, box, negative))
        return out
