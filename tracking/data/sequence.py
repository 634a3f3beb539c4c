"""`Sequence`: one annotated video, in memory or as frame files on disk."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence as Seq

import numpy as np

from tracking.images import FrameError, load_image


@dataclasses.dataclass
class Sequence:
    """One annotated video.

    name: sequence name as the benchmark spells it.
    frames: list of T image paths, or a [T, H, W, 3] uint8 RGB array held in memory.
    boxes: [T, 4] float64, (x, y, w, h) as the annotation file writes them; NaN rows where a frame
      has no annotation (e.g. withheld test ground truth after frame 0). float64 because the
      official toolkits score in float64: a float32 cast moves a non-integer annotation and flips
      frames that sit exactly on a threshold (IoU 0.5, centre error 20 px).
    visible: [T] bool, False where the target is absent/fully occluded; None if unknown.
    extra: benchmark-specific annotations, e.g. 'polygons' [T, 8] (VOT), 'cover' [T] int
      (GOT-10k), 'image_size' (W, H).
    """
    name: str
    frames: Any
    boxes: np.ndarray
    visible: np.ndarray | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, np.float64)
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f'sequence {self.name}: boxes must be [T, 4], got {self.boxes.shape}')
        if len(self.frames) != len(self.boxes):
            raise ValueError(f'sequence {self.name}: {len(self.frames)} frames but '
                             f'{len(self.boxes)} boxes')
        if self.visible is not None:
            self.visible = np.asarray(self.visible, bool)

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, i: int) -> np.ndarray:
        """Frame i as [H, W, 3] uint8 RGB; raises FrameError naming the sequence and file."""
        if isinstance(self.frames, np.ndarray):
            return self.frames[i]
        try:
            return load_image(self.frames[i])
        except FrameError as e:
            raise FrameError(f'sequence {self.name}, frame {i}: {e}') from e

    @property
    def init_box(self) -> np.ndarray:
        """[4] float64 (x, y, w, h) of frame 0 (trackers convert at their boundary)."""
        return self.boxes[0]


def select(sequences: Seq[Sequence], names: Seq[str] | None) -> list[Sequence]:
    """Keeps the sequences named in `names` (in that order); raises KeyError for unknown names."""
    if not names:
        return list(sequences)
    by_name = {s.name: s for s in sequences}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f'unknown sequence(s) {missing}; available: {sorted(by_name)[:10]}...')
    return [by_name[n] for n in names]
