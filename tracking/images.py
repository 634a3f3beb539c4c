"""Image decoding with errors that name the file."""
from __future__ import annotations

import os

import cv2
import numpy as np


class FrameError(IOError):
    """A frame that cannot be read: missing, unreadable or corrupt."""


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as RGB.

    Returns: [H, W, 3] uint8, RGB. Grey-scale files are expanded to 3 channels.
    Raises: FrameError naming the file if it is missing or cannot be decoded.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FrameError(f'frame file not found: {path}')
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FrameError(f'cannot decode frame (corrupt or not an image): {path}')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
