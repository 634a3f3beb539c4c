"""LaSOT extension subset reader (LaSOT_ext: 150 sequences in 15 new categories, the IJCV 2021
journal version's one-shot evaluation set).

Same per-sequence layout as LaSOT, and the same reader (`read_lasot_sequence`):
<root>/<category>/<category>-<n>/{img/%08d.jpg, groundtruth.txt, full_occlusion.txt,
out_of_view.txt}, n = 1..10 per category. The flat layout <root>/<category>-<n>/ (some re-packed
downloads) is read too. Sequence names, e.g. 'atv-1', are those of pytracking's
LaSOTExtensionSubsetDataset list.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from tracking.data.benchmarks.lasot import (lasot_names_on_disk, lasot_sequence_dir,
                                            read_lasot_sequence)
from tracking.data.sequence import Sequence

Loader = Callable[[], Sequence]

# The 15 categories of the extension (none overlaps LaSOT's 70), 10 sequences each.
LASOT_EXT_CATEGORIES = ('atv', 'badminton', 'cosplay', 'dancingshoe', 'footbag', 'frisbee',
                        'jianzi', 'lantern', 'misc', 'opossum', 'paddle', 'raccoon', 'rhino',
                        'skatingshoe', 'wingsuit')
LASOT_EXT_SEQUENCES = tuple(f'{category}-{n}' for category in LASOT_EXT_CATEGORIES
                            for n in range(1, 11))


def read_lasot_ext_sequence(root: Path, name: str) -> Sequence:
    """One sequence, e.g. name 'atv-1': <root>/atv/atv-1/ (or <root>/atv-1/). Ground-truth checks
    and errors (naming the file and line) are those of `read_lasot_sequence`; a missing folder
    raises FileNotFoundError naming it."""
    return read_lasot_sequence(lasot_sequence_dir(Path(root), name))


def _lasot_ext_entries(root: Path, split: str | None) -> list[tuple[str, Loader]]:
    """split 'test' (default): the 150 official sequences, in category order (a sequence whose
    folder is missing raises FileNotFoundError naming the folder when loaded); 'all': every
    sequence folder found under root (both layouts)."""
    split = split or 'test'
    if split == 'test':
        names = list(LASOT_EXT_SEQUENCES)
    elif split == 'all':
        names = lasot_names_on_disk(root)
    else:
        raise ValueError(f"lasot_ext: unknown split {split!r}; use 'test' or 'all'")
    return [(n, lambda n=n: read_lasot_ext_sequence(root, n)) for n in names]
