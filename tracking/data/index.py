"""Compact, memory-mapped index of a training set: (sequence s, frame i) -> path, box, visible.

A training set (GOT-10k, LaSOT, TrackingNet, COCO) is read once into a few flat numpy arrays,
saved as .npy files in one folder and opened with `np.load(..., mmap_mode='r')`, so every
process of a host shares the same pages and no per-sequence Python object is made. Layout of
an index folder (S sequences, N frames in all):

  meta.json          format version, dataset, frame_pattern, first_frame, fingerprint, S, N
  starts.npy         [S + 1] int64, frames of sequence s are flat rows starts[s]..starts[s+1)
  boxes.npy          [N, 4] (x, y, w, h) in pixels, as the readers give them: float32, or
                     float64 when a value is not exactly a float32 (nothing is rounded)
  visible.npy        [N] bool (the readers' `visible`: labels and usable boxes)
  usable_counts.npy  [S] int64, frames per sequence with a finite w, h > 0 visible box
  names.npy / name_starts.npy   sequence names: one joined UTF-8 byte string + [S + 1] offsets
  dirs.npy / dir_starts.npy     frame folders relative to the root, same packing, [D + 1]
  seq_dir.npy        [S] int32, the folder of each sequence (index into dirs)
  files.npy / file_starts.npy   file names (COCO images), same packing, [F + 1]; F = 0 else
  frame_file.npy     [N] int32 index into files (COCO), or [0] when frames follow the pattern
  Target masks (only sets that have them, meta.json "masks": true; read per frame, on demand):
  mask_kind.npy      [N] int8: 0 none, 1 polygons, 2 RLE run lengths, 3 label PNG file
  mask_size.npy      [N, 2] int32: (H, W) of the mask (kinds 1, 2); (object id, 0) for kind 3
  mask_parts.npy     [N + 1] int64: frame n's parts are mask_parts[n]..mask_parts[n+1] (one
                     polygon ring each for kind 1; one part for kinds 2 and 3)
  mask_part_starts.npy [P + 1] int64: part p spans mask_part_starts[p]..[p+1] of mask_values
                     (kinds 1, 2) or of mask_paths (kind 3)
  mask_values.npy    [V] float32 (float64 when a value is not exactly a float32): ring
                     coordinates x1, y1, x2, y2, ... (kind 1), run lengths (kind 2)
  mask_paths.npy     [C] uint8: UTF-8 PNG paths relative to the root (kind 3)

Frame i of sequence s is `<root>/<dirs[seq_dir[s]]>/<frame_pattern>` formatted with
n = i + first_frame and file = files[frame_file[starts[s] + i]] (e.g. '{n:08d}.jpg' for GOT-10k
and LaSOT, '{n}.jpg' for TrackingNet, '{file}' for COCO); the root is the one given when the
index is opened, so the same data mounted elsewhere gives the right paths.

Cache: the index of dataset `d` on root `r` lives in the folder
<cache>/<d>-<key>-<fingerprint>, key = sha1(format version, d, resolved r, options)[:12] and
fingerprint = sha1 over (relative path, size, mtime_ns) of every annotation and list file the
set is read from [:16]. A changed, added or removed annotation file, a new format version or
another root therefore names another folder, which is built (the old one is removed). <cache>
is, in order: the `cache` argument (config.data.index_cache), $TRACKING_INDEX_CACHE, else
<root>/.tracking_index when it can be written, else the user cache folder
($XDG_CACHE_HOME or ~/.cache)/jax_tracking/index. Building reads annotation files only, never
an image. One process builds (an fcntl lock on <cache>/<d>-<key>.lock), into a temporary
folder renamed into place, so a reader never sees a half-written index. An unreadable index
(bad meta.json, missing or truncated .npy, inconsistent shapes) is rebuilt with a warning
naming the file.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence as Seq

import numpy as np

from tracking.images import FrameError, load_image

INDEX_VERSION = 2   # 2: optional target masks
CACHE_ENV = 'TRACKING_INDEX_CACHE'
ROOT_CACHE_NAME = '.tracking_index'

_ARRAYS = ('starts', 'boxes', 'visible', 'usable_counts', 'names', 'name_starts', 'dirs',
           'dir_starts', 'seq_dir', 'files', 'file_starts', 'frame_file')
_MASK_ARRAYS = ('mask_kind', 'mask_size', 'mask_parts', 'mask_part_starts', 'mask_values',
                'mask_paths')
MASK_NONE, MASK_POLYGONS, MASK_RLE, MASK_PNG = 0, 1, 2, 3


class IndexCorrupt(ValueError):
    """An index file that cannot be used; the message names the file."""


def usable_mask(boxes: np.ndarray, visible: np.ndarray | None) -> np.ndarray:
    """[T] bool: finite box with w, h > 0 and visible (when `visible` [T] is known)."""
    ok = np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    if visible is not None:
        ok &= visible
    return ok


# --------------------------------------------------------------------------------------------
# What a dataset reader hands to the index.

@dataclasses.dataclass
class IndexArrays:
    """A training set in flat arrays, as built (before `starts` and packing).

    names: S sequence names; dirs: D frame folders relative to the root; seq_dir [S] int
    (index into dirs); lengths [S] int; boxes [N, 4] float; visible [N] bool; files: F file
    names and frame_file [N] int (index into files), both empty when frames follow the pattern.
    """
    names: list
    dirs: list
    seq_dir: np.ndarray
    lengths: np.ndarray
    boxes: np.ndarray
    visible: np.ndarray
    files: list = dataclasses.field(default_factory=list)
    frame_file: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))
    masks: 'MaskRecords | None' = None     # one record per frame, in frame order


class MaskRecords:
    """Per-frame target masks as the index stores them (module docstring), added in frame
    order while building: none(), polygons(rings, h, w), rle(counts, h, w), png(path, id)."""

    def __init__(self):
        self.kind, self.size, self.parts = [], [], [0]
        self.part_starts, self.values, self.paths = [0], [], []
        self._values_len, self._paths_len = 0, 0

    def _part(self, length: int) -> None:
        self.part_starts.append(self.part_starts[-1] + length)

    def none(self) -> None:
        self.kind.append(MASK_NONE)
        self.size.append((0, 0))
        self.parts.append(self.parts[-1])

    def polygons(self, rings, height: int, width: int) -> None:
        """rings: flat [x1, y1, x2, y2, ...] sequences (COCO polygons) of a (height, width) image."""
        self.kind.append(MASK_POLYGONS)
        self.size.append((int(height), int(width)))
        for ring in rings:
            ring = np.asarray(ring, np.float64).reshape(-1)
            self.values.append(ring)
            self._part(ring.size)
        self.parts.append(self.parts[-1] + len(rings))

    def rle(self, counts, height: int, width: int) -> None:
        """counts: run lengths (column-major, background first) of a (height, width) mask."""
        counts = np.asarray(counts, np.float64).reshape(-1)
        self.kind.append(MASK_RLE)
        self.size.append((int(height), int(width)))
        self.values.append(counts)
        self._part(counts.size)
        self.parts.append(self.parts[-1] + 1)

    def png(self, path: str, object_id: int) -> None:
        """path: label PNG relative to the root; object_id: the target's pixel value."""
        encoded = path.encode('utf-8')
        self.kind.append(MASK_PNG)
        self.size.append((int(object_id), 0))
        self.paths.append(encoded)
        self._part(len(encoded))
        self.parts.append(self.parts[-1] + 1)

    def arrays(self) -> dict:
        values = np.concatenate(self.values) if self.values else np.zeros(0, np.float64)
        as_float32 = values.astype(np.float32)
        if np.array_equal(as_float32, values):
            values = as_float32
        return dict(mask_kind=np.asarray(self.kind, np.int8),
                    mask_size=np.asarray(self.size, np.int32).reshape(-1, 2),
                    mask_parts=np.asarray(self.parts, np.int64),
                    mask_part_starts=np.asarray(self.part_starts, np.int64),
                    mask_values=values,
                    mask_paths=np.frombuffer(b''.join(self.paths), np.uint8).copy())


def arrays_from_sequences(records: Iterable[tuple[str, str, np.ndarray, np.ndarray]]
                          ) -> IndexArrays:
    """IndexArrays from per-sequence (name, frame folder relative to root, boxes [T, 4],
    visible [T]) records, one folder per sequence."""
    names, dirs, boxes, visible = [], [], [], []
    for name, folder, seq_boxes, seq_visible in records:
        names.append(name)
        dirs.append(folder)
        boxes.append(np.asarray(seq_boxes, np.float64).reshape(-1, 4))
        visible.append(np.asarray(seq_visible, bool).reshape(-1))
    lengths = np.asarray([len(b) for b in boxes], np.int64)
    return IndexArrays(names, dirs, np.arange(len(names), dtype=np.int32), lengths,
                       np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float64),
                       np.concatenate(visible) if visible else np.zeros(0, bool))


@dataclasses.dataclass(frozen=True)
class IndexSpec:
    """One training set on one root, as the index needs it.

    dataset: the set's name ('lasot'); root: the folder given by the user; frame_pattern and
    first_frame: see the module docstring; annotation_files: every file the index content
    depends on (fingerprinted on each open); build: reads the annotations -> IndexArrays;
    options: extra text that selects the content (e.g. the COCO split), part of the key.
    """
    dataset: str
    root: Path
    frame_pattern: str
    first_frame: int
    annotation_files: Seq[Path]
    build: Callable[[], IndexArrays]
    options: str = ''


def frame_name(pattern: str, n: int, file: str = '') -> str:
    """The file name of a frame: `pattern` with n (frame number) and file filled in."""
    return pattern.format(n=n, file=file)


# --------------------------------------------------------------------------------------------
# The opened index.

def _string(data: np.ndarray, starts: np.ndarray, k: int) -> str:
    return bytes(data[int(starts[k]):int(starts[k + 1])]).decode('utf-8')


class DatasetIndex:
    """A training set opened from its index folder (arrays memory-mapped, read on demand).

    Frame-table interface shared with `SequenceTable` (what the pair samplers use):
    len(), lengths() [S], usable_counts() [S], name(s), boxes(s) [T, 4] float32,
    visible(s) [T] bool, frame(s, i) [H, W, 3] uint8 RGB. Also frame_path(s, i) and
    sequence(s) (one `Sequence`, for tests and tools).
    """

    def __init__(self, folder: Path, root: Path, meta: dict, arrays: dict):
        self.folder = Path(folder)
        self.root = Path(root)
        self.meta = meta
        self.dataset = meta['dataset']
        self.mapped = arrays               # the np.memmap of each file
        # plain ndarray views of the same mapped pages: no copy, cheaper slicing than np.memmap
        self._a = {k: np.asarray(v) for k, v in arrays.items()}
        text = str(self.root)                 # str(Path(root) / folder) without Path objects
        self._root_text = '' if text == '.' else text
        self._pattern = meta['frame_pattern']
        self._first = int(meta['first_frame'])

    def __len__(self) -> int:
        return len(self._a['seq_dir'])

    @property
    def num_frames(self) -> int:
        return len(self._a['boxes'])

    def lengths(self) -> np.ndarray:
        """[S] int64 frames per sequence."""
        return np.diff(np.asarray(self._a['starts']))

    def usable_counts(self) -> np.ndarray:
        """[S] int64 usable frames per sequence (`usable_mask`)."""
        return np.asarray(self._a['usable_counts'])

    def _span(self, s: int) -> tuple[int, int]:
        starts = self._a['starts']
        return int(starts[s]), int(starts[s + 1])

    def name(self, s: int) -> str:
        return _string(self._a['names'], self._a['name_starts'], s)

    def boxes(self, s: int) -> np.ndarray:
        """[T, 4] float32 (float64 if so stored) (x, y, w, h), a read-only view of the file."""
        a, b = self._span(s)
        return self._a['boxes'][a:b]

    def visible(self, s: int) -> np.ndarray:
        """[T] bool, a read-only view of the mapped file."""
        a, b = self._span(s)
        return self._a['visible'][a:b]

    def frame_path(self, s: int, i: int) -> str:
        """Path of frame i of sequence s (IndexError when i is out of range)."""
        a, b = self._span(s)
        if not 0 <= i < b - a:
            raise IndexError(f'{self.dataset} sequence {self.name(s)}: frame {i} out of range '
                             f'(0..{b - a - 1})')
        folder = _string(self._a['dirs'], self._a['dir_starts'], int(self._a['seq_dir'][s]))
        file = ''
        if len(self._a['frame_file']):
            file = _string(self._a['files'], self._a['file_starts'],
                           int(self._a['frame_file'][a + i]))
        return os.path.join(self._root_text, folder,
                            frame_name(self._pattern, i + self._first, file))

    def frame(self, s: int, i: int) -> np.ndarray:
        """Frame i of sequence s as [H, W, 3] uint8 RGB; FrameError names sequence and file."""
        path = self.frame_path(s, i)
        try:
            return load_image(path)
        except FrameError as e:
            raise FrameError(f'{self.dataset} sequence {self.name(s)}, frame {i}: {e}') from e

    @property
    def has_masks(self) -> bool:
        return 'mask_kind' in self._a

    def mask(self, s: int, i: int) -> np.ndarray | None:
        """[H, W] uint8 0/1 target mask of frame i of sequence s, decoded from the index (or
        read from its label PNG) now; None when the frame or the set has none. MaskError names
        the sequence, frame and file."""
        if not self.has_masks:
            return None
        from tracking.data import masks as masks_lib
        a, b = self._span(s)
        if not 0 <= i < b - a:
            raise IndexError(f'{self.dataset} sequence {self.name(s)}: frame {i} out of range '
                             f'(0..{b - a - 1})')
        n = a + i
        kind = int(self._a['mask_kind'][n])
        if kind == MASK_NONE:
            return None
        first, last = int(self._a['mask_parts'][n]), int(self._a['mask_parts'][n + 1])
        starts = self._a['mask_part_starts']
        size = [int(v) for v in self._a['mask_size'][n]]
        where = f'{self.dataset} sequence {self.name(s)}, frame {i}'
        try:
            if kind == MASK_POLYGONS:
                rings = [self._a['mask_values'][int(starts[p]):int(starts[p + 1])]
                         for p in range(first, last)]
                return masks_lib.polygons_to_mask(rings, *size)
            if kind == MASK_RLE:
                counts = self._a['mask_values'][int(starts[first]):int(starts[first + 1])]
                return masks_lib.rle_decode(np.asarray(counts, np.int64), *size)
            if kind == MASK_PNG:
                rel = _string(self._a['mask_paths'], starts, first)
                labels = masks_lib.read_label_png(os.path.join(self._root_text, rel))
                return (labels == size[0]).astype(np.uint8)
        except masks_lib.MaskError as e:
            raise masks_lib.MaskError(f'{where}: {e}') from None
        raise masks_lib.MaskError(f'{where}: unknown mask kind {kind} in {self.folder}')

    def sequence(self, s: int):
        """Sequence s as a `Sequence` (frame paths, boxes, visible; no extras)."""
        from tracking.data.sequence import Sequence
        frames = [self.frame_path(s, i) for i in range(int(self.lengths()[s]))]
        return Sequence(self.name(s), frames, np.array(self.boxes(s)),
                        np.array(self.visible(s)))


class SequenceTable:
    """A list of `Sequence`s behind the frame-table interface of `DatasetIndex` (small sets,
    tests, the synthetic set)."""

    def __init__(self, sequences: Seq):
        self.sequences = list(sequences)

    def __len__(self) -> int:
        return len(self.sequences)

    def lengths(self) -> np.ndarray:
        return np.asarray([len(s) for s in self.sequences], np.int64)

    def usable_counts(self) -> np.ndarray:
        return np.asarray([int(usable_mask(s.boxes, s.visible).sum()) for s in self.sequences],
                          np.int64)

    def name(self, s: int) -> str:
        return self.sequences[s].name

    def boxes(self, s: int) -> np.ndarray:
        return self.sequences[s].boxes

    def visible(self, s: int) -> np.ndarray | None:
        return self.sequences[s].visible

    def frame(self, s: int, i: int) -> np.ndarray:
        return self.sequences[s].frame(i)

    def mask(self, s: int, i: int) -> np.ndarray | None:
        """[H, W] uint8 0/1 target mask of frame i of sequence s, None when it has none
        (`tracking.data.masks.sequence_mask`: the sequence's extra['masks'])."""
        from tracking.data.masks import sequence_mask
        return sequence_mask(self.sequences[s], i)


def as_frame_table(data) -> DatasetIndex | SequenceTable:
    """`data` itself if it is a frame table, else SequenceTable(list of Sequence)."""
    if isinstance(data, (DatasetIndex, SequenceTable)):
        return data
    return SequenceTable(data)


# --------------------------------------------------------------------------------------------
# Cache folders, fingerprint, lock.

def user_cache_dir() -> Path:
    """($XDG_CACHE_HOME or ~/.cache)/jax_tracking/index."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'jax_tracking' / 'index'


def cache_folders(root: Path, cache: str | os.PathLike | None = None) -> list[Path]:
    """Where to look for (and build) an index, in order; see the module docstring."""
    explicit = cache or os.environ.get(CACHE_ENV)
    if explicit:
        return [Path(explicit)]
    return [Path(root) / ROOT_CACHE_NAME, user_cache_dir()]


def _can_write(folder: Path) -> bool:
    """Creates `folder` if needed and checks a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix='.probe-'):
            pass
        return True
    except OSError:
        return False


def fingerprint(root: Path, files: Iterable[Path]) -> str:
    """sha1 over (path relative to root, size, mtime_ns) of each file ('missing' if absent)."""
    h = hashlib.sha1()
    root_text = str(root)
    for path in files:
        text = str(path)
        rel = text[len(root_text):] if text.startswith(root_text) else text
        try:
            st = os.stat(path)
            h.update(f'{rel}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode('utf-8', 'replace'))
        except FileNotFoundError:
            h.update(f'{rel}\0missing\n'.encode('utf-8', 'replace'))
    return h.hexdigest()


def root_key(spec: IndexSpec) -> str:
    text = f'{INDEX_VERSION}|{spec.dataset}|{Path(spec.root).resolve()}|{spec.options}'
    return hashlib.sha1(text.encode('utf-8', 'replace')).hexdigest()[:12]


@contextlib.contextmanager
def _lock(path: Path):
    """Exclusive fcntl lock on `path` (no lock where the file system refuses one)."""
    try:
        import fcntl
        handle = open(path, 'a+')
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            logging.warning('dataset index: cannot lock %s; building without a lock', path)
        yield
    finally:
        handle.close()


# --------------------------------------------------------------------------------------------
# Writing and reading index folders.

def _pack(strings: Seq[str]) -> tuple[np.ndarray, np.ndarray]:
    """Joined UTF-8 bytes [B] uint8 and offsets [len + 1] int64."""
    encoded = [s.encode('utf-8') for s in strings]
    starts = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=starts[1:])
    return np.frombuffer(b''.join(encoded), np.uint8).copy(), starts


def _final_arrays(built: IndexArrays) -> dict:
    lengths = np.asarray(built.lengths, np.int64)
    starts = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=starts[1:])
    boxes = np.ascontiguousarray(built.boxes).reshape(-1, 4)
    as_float32 = boxes.astype(np.float32)
    if np.array_equal(as_float32, boxes, equal_nan=True):   # half the size, same values
        boxes = as_float32
    visible = np.ascontiguousarray(built.visible, bool).reshape(-1)
    if not len(boxes) == len(visible) == starts[-1]:
        raise ValueError(f'dataset index: {len(boxes)} boxes, {len(visible)} visible flags but '
                         f'{starts[-1]} frames')
    usable = np.concatenate([[0], np.cumsum(usable_mask(boxes, visible), dtype=np.int64)])
    out = dict(starts=starts, boxes=boxes, visible=visible,
               usable_counts=usable[starts[1:]] - usable[starts[:-1]],
               seq_dir=np.asarray(built.seq_dir, np.int32),
               frame_file=np.asarray(built.frame_file, np.int32))
    for key, strings in (('names', built.names), ('dirs', built.dirs), ('files', built.files)):
        out[key], out[f'{key[:-1]}_starts'] = _pack(strings)
    if built.masks is not None:
        out.update(built.masks.arrays())
        if len(out['mask_kind']) != len(visible):
            raise ValueError(f'dataset index: {len(out["mask_kind"])} mask records but '
                             f'{len(visible)} frames')
    return out


def _write(folder: Path, name: str, arrays: dict, meta: dict) -> Path:
    """Writes the index into a temporary folder and renames it to folder/name."""
    final = folder / name
    tmp = Path(tempfile.mkdtemp(prefix=f'.tmp-{name}-', dir=folder))
    try:
        for key in _ARRAYS + (_MASK_ARRAYS if meta.get('masks') else ()):
            np.save(tmp / f'{key}.npy', arrays[key], allow_pickle=False)
        (tmp / 'meta.json').write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / 'meta.json').is_file():   # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _check(condition: bool, path: Path, what: str) -> None:
    if not condition:
        raise IndexCorrupt(f'{path}: {what}')


def _read(folder: Path, spec: IndexSpec, fp: str) -> DatasetIndex:
    """Opens an index folder (memory-mapped); IndexCorrupt naming the bad file."""
    meta_path = folder / 'meta.json'
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise IndexCorrupt(f'{meta_path}: {e}') from None
    _check(isinstance(meta, dict) and meta.get('version') == INDEX_VERSION, meta_path,
           f'format version {meta.get("version") if isinstance(meta, dict) else None}, '
           f'expected {INDEX_VERSION}')
    _check(meta.get('dataset') == spec.dataset and meta.get('fingerprint') == fp, meta_path,
           'dataset or fingerprint does not match the folder name')
    arrays = {}
    for key in _ARRAYS + (_MASK_ARRAYS if meta.get('masks') else ()):
        path = folder / f'{key}.npy'
        try:
            arrays[key] = np.load(path, mmap_mode='r', allow_pickle=False)
        except (OSError, ValueError) as e:
            raise IndexCorrupt(f'{path}: {e}') from None
    s, n = int(meta.get('sequences', -1)), int(meta.get('frames', -1))
    for key, shape in (('starts', (s + 1,)), ('boxes', (n, 4)), ('visible', (n,)),
                       ('usable_counts', (s,)), ('name_starts', (s + 1,)), ('seq_dir', (s,))):
        _check(arrays[key].shape == shape, folder / f'{key}.npy',
               f'shape {arrays[key].shape}, expected {shape}')
    _check(int(arrays['starts'][-1]) == n and int(arrays['starts'][0]) == 0,
           folder / 'starts.npy', f'does not span the {n} frames')
    _check(arrays['frame_file'].shape in ((0,), (n,)), folder / 'frame_file.npy',
           f'shape {arrays["frame_file"].shape}, expected (0,) or ({n},)')
    if meta.get('masks'):
        for key, shape in (('mask_kind', (n,)), ('mask_size', (n, 2)), ('mask_parts', (n + 1,))):
            _check(arrays[key].shape == shape, folder / f'{key}.npy',
                   f'shape {arrays[key].shape}, expected {shape}')
        parts = int(arrays['mask_parts'][-1])
        _check(arrays['mask_part_starts'].shape == (parts + 1,),
               folder / 'mask_part_starts.npy', f'does not list the {parts} mask parts')
    for key in ('names', 'dirs', 'files'):
        starts = arrays[f'{key[:-1]}_starts']
        _check(starts.ndim == 1 and len(starts) >= 1 and int(starts[-1]) == len(arrays[key]),
               folder / f'{key[:-1]}_starts.npy', f'does not span {key}.npy')
    return DatasetIndex(folder, spec.root, meta, arrays)


def _try_read(folder: Path, spec: IndexSpec, fp: str) -> DatasetIndex | None:
    """The index in `folder`, or None when absent; a corrupt one is removed with a warning."""
    if not folder.is_dir():
        return None
    try:
        return _read(folder, spec, fp)
    except IndexCorrupt as e:
        warnings.warn(f'dataset index {e}; rebuilding it', RuntimeWarning, stacklevel=3)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _remove_stale(folder: Path, stem: str, keep: str) -> None:
    for old in folder.glob(f'{stem}-*'):
        if old.name != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def open_index(spec: IndexSpec, cache: str | os.PathLike | None = None) -> DatasetIndex:
    """The index of `spec`, memory-mapped; built first when missing, stale or corrupt.

    cache: the cache folder (config.data.index_cache); see the module docstring for the
    default. Raises OSError naming the folders when none can be written and none holds the
    index; the readers' errors (FileNotFoundError, ValueError naming file and line) while
    building.
    """
    fp = fingerprint(Path(spec.root), spec.annotation_files)
    stem = f'{spec.dataset}-{root_key(spec)}'
    name = f'{stem}-{fp[:16]}'
    folders = cache_folders(Path(spec.root), cache)
    for folder in folders:
        index = _try_read(folder / name, spec, fp)
        if index is not None:
            return index
    target = next((f for f in folders if _can_write(f)), None)
    if target is None:
        raise OSError(f'dataset index for {spec.dataset} ({spec.root}): no writable cache '
                      f'folder among {[str(f) for f in folders]} (set config.data.index_cache '
                      f'or ${CACHE_ENV})')
    with _lock(target / f'{stem}.lock'):
        index = _try_read(target / name, spec, fp)
        if index is not None:
            return index
        logging.info('dataset index: building %s for %s in %s', spec.dataset, spec.root, target)
        arrays = _final_arrays(spec.build())
        meta = dict(version=INDEX_VERSION, dataset=spec.dataset, root=str(spec.root),
                    options=spec.options, frame_pattern=spec.frame_pattern,
                    first_frame=int(spec.first_frame), fingerprint=fp,
                    annotation_files=len(spec.annotation_files),
                    sequences=len(arrays['seq_dir']), frames=len(arrays['boxes']),
                    masks='mask_kind' in arrays)
        _write(target, name, arrays, meta)
        _remove_stale(target, stem, keep=name)
    return _read(target / name, spec, fp)
