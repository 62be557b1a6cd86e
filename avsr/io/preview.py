"""Contact sheets of mouth crops, for a person to check what the lip-ROI stage cut."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from avsr.files import atomic_path
from avsr.io.lip_roi import LipRoi


def contact_sheet(lip_roi: LipRoi, columns: int = 10, max_tiles: int = 40, landmarks: bool = True) -> np.ndarray:
    """An RGB image ``(H, W, 3) uint8`` of evenly spaced crops with their times.

    Frames without a face get a red frame; with ``landmarks`` the lip points are green dots.
    """
    count = len(lip_roi)
    indices = np.unique(np.linspace(0, count - 1, min(count, max_tiles)).round().astype(int))
    size = lip_roi.roi.shape[1]
    tiles = []
    for index in indices:
        tile = cv2.cvtColor(lip_roi.roi[index], cv2.COLOR_GRAY2RGB)
        if lip_roi.face_found[index] and landmarks:
            for x, y in lip_roi.mouth_landmarks[index]:
                cv2.circle(tile, (int(round(x)), int(round(y))), 1, (0, 230, 0), -1)
        elif not lip_roi.face_found[index]:
            cv2.rectangle(tile, (0, 0), (size - 1, size - 1), (230, 0, 0), 3)
        cv2.putText(tile, f"{lip_roi.timestamps_s[index]:.2f}s", (3, size - 5), cv2.FONT_HERSHEY_SIMPLEX,
                    0.33, (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    rows = -(-len(tiles) // columns)
    tiles += [np.zeros_like(tiles[0])] * (rows * columns - len(tiles))
    return np.concatenate([np.concatenate(tiles[r * columns:(r + 1) * columns], axis=1) for r in range(rows)])


def save_contact_sheet(lip_roi: LipRoi | list[LipRoi], path: str | os.PathLike, **kwargs) -> None:
    """Write :func:`contact_sheet` as a PNG, atomically; for several faces, their sheets one below the other."""
    path = Path(path)
    sheet = np.concatenate([contact_sheet(face, **kwargs) for face in
                            (lip_roi if isinstance(lip_roi, list) else [lip_roi])])
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: could not write the PNG; check that the folder is writable")
