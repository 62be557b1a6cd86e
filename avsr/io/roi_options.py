"""How mouth crops are found and cut: :class:`LipRoiOptions`, read by every stage of :mod:`avsr.io.lip_roi`
(the landmark track, the alignment, the cut) and by the callers that set them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from avsr.errors import OptionError
from avsr.preprocessing import DETECT_EVERY, DETECT_MAX_SIDE, ROI_SIZE, ROI_STYLES

if TYPE_CHECKING:  # the command line reads the defaults here without paying for numpy
    import numpy as np


@dataclass(frozen=True)
class LipRoiOptions:
    """How mouth crops are found and cut."""

    crop_size: int = ROI_SIZE  # side of the square grayscale crop, pixels
    # Where the crop sits and how large: "avsr" (this package's: the mouth at the centre, its width a
    # fixed share of the crop, mouth_width_fraction) or "auto-avsr" (auto_avsr's mean-face alignment,
    # avsr.io.mean_face: its own smoothing; the mouth_* and smooth_* fields below do not apply).
    roi_style: str = ROI_STYLES[0]
    mouth_width_fraction: float = 0.55  # an average mouth spans this fraction of the crop width
    detect_every: int = DETECT_EVERY  # run the landmarker on every k-th frame and interpolate in between
    # While the head holds still, the stride doubles after each detection up to this many frames, and
    # it falls back to detect_every as soon as the head moves or the face is lost (None: fixed stride).
    # Measured (docs/history/2026-12-01.md): 3..12 prepared the synthetic test set 1.8x
    # faster, but the embedded model, trained on fixed-stride crops, read its video 17.3 -> 24.6 % WER.
    detect_every_max: int | None = None
    still_motion: float = 0.005  # "still": the stable points moved less than this x the face width a frame
    # Frames are downscaled to this longer side for detection (None: full size); crops come from the full frame.
    detect_max_side: int | None = DETECT_MAX_SIDE
    # Faces MediaPipe may report per frame: avsr lip-roi cuts a track for each (avsr.io.face_rois),
    # the single-face track (extract_lip_roi) follows the largest.
    max_faces: int = 4
    max_gap_frames: int = 12  # longer runs without a face are face_found=False (12 = 0.48 s)
    smooth_sigma_frames: float = 2.5  # Gaussian smoothing of the head pose over time, frames
    mouth_smooth_sigma_frames: float = 4.0  # smoothing of the mouth position in the face, frames
    landmarker_model: str | None = None  # another face_landmarker .task bundle

    def __post_init__(self) -> None:
        if self.roi_style not in ROI_STYLES:
            raise OptionError(f"roi_style={self.roi_style!r}; use one of {', '.join(ROI_STYLES)}")
        if self.crop_size < 16:
            raise OptionError(f"crop_size={self.crop_size} is too small; use at least 16")
        if self.max_faces < 1:
            raise OptionError(f"max_faces={self.max_faces} must be >= 1")
        if self.detect_every < 1:
            raise OptionError(f"detect_every={self.detect_every} must be >= 1")
        if self.still_motion <= 0:
            raise OptionError(f"still_motion={self.still_motion} must be > 0 (a share of the face width per frame)")
        if self.detect_every_max is not None and self.detect_every_max < self.detect_every:
            raise OptionError(f"detect_every_max={self.detect_every_max} must be >= detect_every={self.detect_every} "
                             "(or None for a fixed stride)")
        if self.max_gap_frames < self.longest_stride - 1:
            raise OptionError(
                f"max_gap_frames={self.max_gap_frames} is shorter than the frames skipped between "
                f"detections (up to {self.longest_stride}); use max_gap_frames >= {self.longest_stride - 1}"
            )
        if self.detect_max_side is not None and self.detect_max_side < 64:
            raise OptionError(f"detect_max_side={self.detect_max_side} is too small; use >= 64 or None")
        if not 0.1 <= self.mouth_width_fraction <= 0.9:
            raise OptionError(f"mouth_width_fraction={self.mouth_width_fraction} must be in [0.1, 0.9]")
        if self.smooth_sigma_frames < 0:
            raise OptionError(f"smooth_sigma_frames={self.smooth_sigma_frames} must be >= 0")

    @property
    def longest_stride(self) -> int:
        """The most frames from one landmarker call to the next."""
        return self.detect_every_max or self.detect_every

    def next_stride(self, stride: int, points: np.ndarray | None, previous: np.ndarray | None, frames: int) -> int:
        """Frames until the landmarker's next call, after a call that found ``points`` (None: no face)
        ``frames`` after the call that found ``previous``: twice ``stride`` (at most
        ``detect_every_max``) while the stable points moved less than ``still_motion`` x the face width
        per frame, else ``detect_every``."""
        if self.detect_every_max is None or points is None or previous is None:
            return self.detect_every
        import numpy as np

        from avsr.io.face_mesh import STABLE_SLICE, face_size

        motion = np.abs(points[STABLE_SLICE] - previous[STABLE_SLICE]).max() / frames / max(face_size(points), 1.0)
        return min(2 * stride, self.detect_every_max) if motion < self.still_motion else self.detect_every
