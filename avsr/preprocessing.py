"""What a model sees: sample rate, frame rate, crop and pixel normalisation, defined once.

Every other module takes these values from here, and every model bundle stores its own
:class:`Preprocessing`, so a model is always fed input prepared the way it was trained::

    SAMPLE_RATE = 16000                              # audio, Hz
    VIDEO_FPS = 25                                   # mouth crops per second
    SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS     # 640 audio samples per video frame
    FRAME_S = 1 / VIDEO_FPS                          # 0.04 s, one CTC frame
    ROI_SIZE = 96                                    # side of the stored mouth crops (avsr lip-roi)
    CROP_SIZE = 88                                   # side of the crop the network sees

The leaf of the package: it imports nothing from ``avsr``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

from avsr.errors import AvsrError

if TYPE_CHECKING:  # this module is read by the CLI and the recipes, which must not pay for numpy or torch
    import numpy as np

SAMPLE_RATE = 16_000
VIDEO_FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS
FRAME_S = 1 / VIDEO_FPS
ROI_SIZE = 96
CROP_SIZE = 88
# Where the mouth crop sits and how large (avsr.io.lip_roi.LipRoiOptions.roi_style): "avsr", this package's
# own (the mouth centred, its width a fixed share of the crop), or "auto-avsr", auto_avsr's mean-face
# alignment (avsr.io.mean_face), as its MediaPipe preparation feeds its published models. The first is
# the default.
ROI_STYLES = ("avsr", "auto-avsr")
# Defaults of the lip-ROI stage (avsr.io.lip_roi.LipRoiOptions), here so that the CLI can state them
# without importing the stage: the face landmarker runs on every 3rd frame, on frames scaled down to
# 320 px on their longer side (crops are still cut from the full frame). Chosen with
# python -m bench.lip_roi_speed and bench.av_sync (docs/history/2026-12-01.md, 23ef921…3ab4d05).
DETECT_EVERY = 3
DETECT_MAX_SIDE = 320
# Transcription (`avsr transcribe`, `avsr render`) runs it on every 6th frame: against every 3rd,
# the embedded model's WER on the synthetic test set did not change beyond its paired interval (av in
# babble -2..-5 %, video -5 % [-14, +2] relative), the audio-video offset estimate, which reads the
# mouth from the crops' pixels on every frame (avsr.inference.sync.mouth_signal), was as good, and
# transcription took 30 % less CPU; the crop drifts 1.1-1.5 % of the eye distance further from the
# every-frame track on a real moving head (RESULTS.md#lip-roi-speed-and-steadiness; docs/history/2026-12-02.md).
# Training data keeps DETECT_EVERY.
TRANSCRIBE_DETECT_EVERY = 6
VAD_THRESHOLD = 0.5  # Silero speech probability from which a frame is speech (avsr.io.vad)
MODEL_MODES = ("av", "audio", "video")  # what a model reads: both streams, the audio alone, the lips alone
# Grey-level mean and standard deviation (/255) of mouth crops: the LRS3 values used by auto_avsr.
PIXEL_MEAN, PIXEL_STD = 0.421, 0.165
VIDEO_NORMS = ("global", "utterance", "utterance_rms", "utterance_moving")
# Floor of an utterance's motion RMS under ``utterance_rms``: a still mouth is not blown up to a moving one.
MIN_MOTION_RMS = 0.02
# Weight of a frame that does not change at all under ``utterance_moving``; a speaking mouth's frames step by
# 0.02-0.14 (5th-95th percentile of the mean absolute change of standardised grey levels, synthetic test clips).
MIN_STEP_WEIGHT = 1e-6


class PreprocessingError(AvsrError, ValueError):
    """A preprocessing spec that is inconsistent or that this version cannot produce."""


@dataclass(frozen=True)
class Preprocessing:
    """How raw media becomes network input; stored in every bundle.

    Args:
        sample_rate, fps: audio rate and mouth-crop rate; the audio front end reads
            ``sample_rate // fps`` samples per video frame.
        roi_size: side of the stored mouth crops; crop_size: side of the centre crop the network sees.
        pixel_mean, pixel_std: grey levels (/255) are standardised with these.
        video_norm: ``global`` (standardise only), or ``utterance``: also subtract the utterance's
            mean image over its frames with a face, which removes identity and lighting and keeps
            the motion (CMVN for the lips). Frames without a face are 0 either way under
            ``utterance``; under ``global`` they are what blank pixels standardise to.
            ``utterance_rms``: as ``utterance``, then the motion left is scaled to an RMS of
            ``motion_rms`` (CMVN's variance step): a face whose lips move half as many pixels (a
            narrow mouth, a smaller crop of it) gives the same input amplitude as the faces trained on.
            ``utterance_moving``: as ``utterance_rms``, but each frame counts in the mean image and the RMS
            by how much the crop changes into and out of it (the mean absolute step to its neighbours),
            so a face held still (a lead-in or trail of quiet, a frozen picture) does not move the
            statistics of the frames that speak; with no change at all, every frame counts the same.
        motion_rms: the RMS of the motion under ``utterance_rms``. 0.26 is the median of the
            synthetic corpus's training speakers under ``utterance``, so a model trained with
            ``utterance`` sees the input range it knows.
        roi_style: how the mouth crops the model reads are cut (one of :data:`ROI_STYLES`; see
            ``LipRoiOptions.roi_style``). auto_avsr's models read ``auto-avsr`` crops with this spec's
            other defaults (96 px crops, the centre 88, mean 0.421, std 0.165).
    """

    sample_rate: int = SAMPLE_RATE
    fps: int = VIDEO_FPS
    roi_size: int = ROI_SIZE
    crop_size: int = CROP_SIZE
    pixel_mean: float = PIXEL_MEAN
    pixel_std: float = PIXEL_STD
    video_norm: str = "global"
    motion_rms: float = 0.26
    roi_style: str = ROI_STYLES[0]

    def __post_init__(self) -> None:
        if self.sample_rate % self.fps:
            raise PreprocessingError(f"sample_rate={self.sample_rate} is not a whole number of samples per frame "
                                     f"at fps={self.fps}")
        if not 0 < self.crop_size <= self.roi_size:
            raise PreprocessingError(f"crop_size={self.crop_size} must be between 1 and roi_size={self.roi_size}")
        if self.pixel_std <= 0:
            raise PreprocessingError(f"pixel_std={self.pixel_std} must be positive")
        if self.video_norm not in VIDEO_NORMS:
            raise PreprocessingError(f"video_norm={self.video_norm!r}; use one of {', '.join(VIDEO_NORMS)}")
        if self.motion_rms <= 0:
            raise PreprocessingError(f"motion_rms={self.motion_rms} must be positive")
        if self.roi_style not in ROI_STYLES:
            raise PreprocessingError(f"roi_style={self.roi_style!r} is a crop this avsr cannot cut (it cuts "
                                     f"{', '.join(ROI_STYLES)}): upgrade avsr")

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate // self.fps

    @property
    def frame_s(self) -> float:
        return 1 / self.fps

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> "Preprocessing":
        """The spec stored in a bundle; ``None`` (bundles made before the spec existed) gives the
        values those models were trained with. Unknown keys are refused, never ignored."""
        if values is None:
            return cls()
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise PreprocessingError(f"unknown preprocessing field(s) {', '.join(sorted(unknown))}; this model was "
                                     "made by a newer avsr: upgrade avsr")
        return cls(**values)

    def check_runnable(self) -> None:
        """Refuse a spec this version's media pipeline and audio front end cannot produce."""
        if (self.sample_rate, self.fps) != (SAMPLE_RATE, VIDEO_FPS):
            raise PreprocessingError(f"the model expects {self.sample_rate} Hz audio and {self.fps} fps video; this "
                                     f"avsr reads {SAMPLE_RATE} Hz and {VIDEO_FPS} fps only")

    def crop_box(self, random_offset: tuple[int, int] | None = None) -> tuple[slice, slice]:
        """Rows and columns of the network's crop inside a ``roi_size`` crop: centred, or at
        ``random_offset`` (top, left) for training augmentation."""
        top, left = random_offset if random_offset is not None else ((self.roi_size - self.crop_size) // 2,) * 2
        return slice(top, top + self.crop_size), slice(left, left + self.crop_size)

    def check_roi(self, roi: np.ndarray, source: str = "input") -> None:
        """Refuse mouth crops of another size than this spec's ``roi_size``."""
        if roi.ndim != 3 or roi.shape[1:] != (self.roi_size, self.roi_size):
            raise PreprocessingError(f"{source}: mouth crops of shape {tuple(roi.shape[1:])}; the model expects "
                                     f"{self.roi_size}x{self.roi_size} crops: cut them with "
                                     f"LipRoiOptions(crop_size={self.roi_size}), or use a model made for "
                                     f"{roi.shape[1]}x{roi.shape[2]} crops")

    def normalise_video(self, video, face_found, lengths):
        """Network input from cropped grey levels.

        Args:
            video: ``(B, T, H, W)`` grey levels 0-255 (a uint8 or float torch tensor), already cropped
                to ``crop_size``.
            face_found: ``(B, T)`` bool; lengths: ``(B,)`` valid frames (padding becomes 0).
        Returns:
            float32 ``(B, T, H, W)``.
        """
        import torch

        # In place on one float copy: a temporary the size of the batch (60 MB for four 30 s windows)
        # costs its page faults each time, and there were ten (docs/history/2026-12-02.md). The values are
        # the same, operation for operation.
        valid = torch.arange(video.shape[1], device=video.device)[None] < lengths.to(video.device)[:, None]
        x = video.to(torch.float32, copy=True).div_(255).sub_(self.pixel_mean).div_(self.pixel_std)  # never the input
        if self.video_norm == "utterance_moving":
            return self._normalise_moving(x, face_found & valid)
        if self.video_norm in ("utterance", "utterance_rms"):
            face = (face_found & valid)[..., None, None]
            frames = face.sum(dim=1, keepdim=True).clamp(min=1)
            x.masked_fill_(~face, 0.0)
            x.sub_(x.sum(dim=1, keepdim=True) / frames).masked_fill_(~face, 0.0)
            if self.video_norm == "utterance_rms":
                rms = (x.square().sum(dim=(1, 2, 3), keepdim=True) / (frames * x.shape[2] * x.shape[3])).sqrt()
                x.mul_(self.motion_rms / rms.clamp(min=MIN_MOTION_RMS))
            return x
        return x.masked_fill_(~valid[..., None, None], 0.0)

    def _normalise_moving(self, x, face):
        """``utterance_moving`` in place on ``x`` ``(B, T, H, W)`` (standardised grey levels), ``face``
        ``(B, T)`` the valid frames with a face."""
        import torch

        weight = torch.zeros(face.shape, dtype=x.dtype, device=x.device)
        for row in range(len(x)):  # one utterance's steps at a time: the temporary stays small
            step = (x[row, 1:] - x[row, :-1]).abs_().mean(dim=(1, 2)) * (face[row, 1:] & face[row, :-1])
            weight[row, 1:] += step / 2
            weight[row, :-1] += step / 2
        weight = (weight + MIN_STEP_WEIGHT * face)[..., None, None]  # 0 without a face; a still face: all alike
        total = weight.sum(dim=1, keepdim=True).clamp(min=MIN_STEP_WEIGHT)
        x.sub_((x * weight).sum(dim=1, keepdim=True) / total).masked_fill_(~face[..., None, None], 0.0)
        rms = ((x.square() * weight).sum(dim=(1, 2, 3), keepdim=True) / (total * x.shape[2] * x.shape[3])).sqrt()
        return x.mul_(self.motion_rms / rms.clamp(min=MIN_MOTION_RMS))
