"""On-the-fly augmentation of one utterance: noise, modality dropout, crop, flip, time masking, an
audio-video offset, and lead-ins and trails of room tone.

Every random choice comes from a generator seeded by (seed, epoch, index), so a run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avsr.errors import OptionError
from avsr.data.noise import NoiseFolder, babble, mix_at_snr, room_tone, white_noise
from avsr.preprocessing import Preprocessing


@dataclass(frozen=True)
class AugmentOptions:
    """Training-time augmentation. Evaluation uses ``AugmentOptions.evaluation()``."""

    noise_prob: float = 0.5  # share of utterances that get additive noise
    snr_db_range: tuple[float, float] = (-5.0, 20.0)  # SNR drawn uniformly in this range
    noise_types: tuple[str, ...] = ("white", "babble")  # and "folder" with noise_dir
    noise_dir: str | None = None  # MUSAN-style folder of noise recordings
    babble_speakers: int = 4  # utterances summed into babble
    drop_audio_prob: float = 0.1  # audio replaced by silence
    drop_video_prob: float = 0.1  # all frames blanked, face_found False
    blank_span_prob: float = 0.2  # one random span of frames blanked (face lost for a while)
    face_gap_prob: float = 0.0  # share of utterances whose face is lost for a few frames at a time, as a
    max_face_gaps: int = 3  # landmarker loses one behind a hand or in a blur: 1..max_face_gaps gaps of
    max_face_gap_frames: int = 8  # 1..max_face_gap_frames frames each (avsr evaluate --face-gap-s)
    random_crop: bool = True  # the model's crop (Preprocessing.crop_size) at a random place; centred when False
    flip_prob: float = 0.5  # horizontal flip
    time_mask_prob: float = 0.2  # one span of audio and frames zeroed together
    pad_prob: float = 0.0  # silence added before and after (edge frames repeated), so that a
    max_pad_frames: int = 12  # model cannot read the timing of words off the clip's ends
    offset_prob: float = 0.0  # share of utterances whose video is shifted against the audio
    max_offset_frames: int = 5  # by up to this many 25 fps frames either way (5 = 200 ms), drawn uniformly
    # Lead-ins and trails, as a recording starts and ends in a quiet room (avsr evaluate --lead-in-s,
    # --trail-s, --room-tone-dbfs): the share of utterances lengthened by 0..max_lead_in_frames before
    # and 0..max_trail_frames after (each drawn uniformly), the first (last) crop held over them and
    # the sound pink room tone at a level drawn uniformly from room_tone_dbfs_range (RMS, dB full scale).
    lead_in_prob: float = 0.0
    max_lead_in_frames: int = 75  # 3 s
    max_trail_frames: int = 50  # 2 s
    room_tone_dbfs_range: tuple[float, float] = (-70.0, -45.0)

    def __post_init__(self) -> None:
        unknown = set(self.noise_types) - {"white", "babble", "folder"}
        if unknown:
            raise OptionError(f"noise_types {sorted(unknown)}; use white, babble and/or folder")
        if "folder" in self.noise_types and not self.noise_dir:
            raise OptionError("noise type 'folder' needs noise_dir")
        if self.max_offset_frames < 0:
            raise OptionError(f"max_offset_frames={self.max_offset_frames} must be 0 or more")
        if self.max_face_gaps < 1 or self.max_face_gap_frames < 1:
            raise OptionError(f"max_face_gaps={self.max_face_gaps} and max_face_gap_frames={self.max_face_gap_frames} "
                             "must be 1 or more")
        if not 0 <= self.lead_in_prob <= 1:
            raise OptionError(f"lead_in_prob={self.lead_in_prob} must be from 0 to 1")
        if self.max_lead_in_frames < 0 or self.max_trail_frames < 0:
            raise OptionError(f"max_lead_in_frames={self.max_lead_in_frames} and max_trail_frames="
                              f"{self.max_trail_frames} must be 0 or more")
        low, high = self.room_tone_dbfs_range
        if not -100.0 <= low <= high <= 0.0:
            raise OptionError(f"room_tone_dbfs_range=({low:g}, {high:g}): use two levels from -100 to 0 dBFS, the lower "
                              "first")

    @classmethod
    def evaluation(cls) -> "AugmentOptions":
        return cls(noise_prob=0.0, drop_audio_prob=0.0, drop_video_prob=0.0, blank_span_prob=0.0, face_gap_prob=0.0,
                   random_crop=False, flip_prob=0.0, time_mask_prob=0.0, pad_prob=0.0, lead_in_prob=0.0)


def with_room_tone(video: np.ndarray, face_found: np.ndarray, audio: np.ndarray, lead_in: int, trail: int,
                   dbfs: float, rng: np.random.Generator, samples_per_frame: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The utterance with ``lead_in`` frames before it and ``trail`` after: the first (last) crop
    and its ``face_found`` held, the sound :func:`~avsr.data.noise.room_tone` at ``dbfs``, as
    ``avsr evaluate --lead-in-s --trail-s --room-tone-dbfs`` lengthens a test clip."""
    audio = audio[: len(video) * samples_per_frame]
    frames = ((lead_in, trail),)
    before = room_tone(lead_in * samples_per_frame, dbfs, rng)
    after = room_tone(trail * samples_per_frame, dbfs, rng)
    return (np.pad(video, frames + ((0, 0), (0, 0)), mode="edge"), np.pad(face_found, frames, mode="edge"),
            np.concatenate([before, audio, after]).astype(audio.dtype))


def shift_video(video: np.ndarray, face_found: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The video moved ``frames`` later against the audio (positive: the video lags; negative: it
    leads), at the same length. Frames shifted in from outside the clip are black and have no face,
    as when the face is lost: the model is never shown made-up lips. (Undoing a file's own offset
    holds the clip's edge frames instead: :class:`avsr.io.spool.ShiftedFrames`.)"""
    if frames == 0:
        return video, face_found
    shifted, found = np.zeros_like(video), np.zeros_like(face_found)
    count = len(video) - abs(frames)
    if count > 0:
        target, source = (slice(frames, None), slice(None, count)) if frames > 0 else \
            (slice(None, count), slice(-frames, None))
        shifted[target], found[target] = video[source], face_found[source]
    return shifted, found


SNR_CAP_DB = 60.0  # frame SNRs are clipped to +-this: a frame without noise, or without the speaker


def frame_snr_db(clean: np.ndarray, noisy: np.ndarray, samples_per_frame: int) -> np.ndarray:
    """``(T,)`` each frame's own SNR in dB: the clean speech's energy over that of what was added
    to it (``noisy - clean``), clipped to ``±SNR_CAP_DB`` (a frame with no noise added: the cap; a
    speaker's pause in babble: far below 0). NaN where both are silent (audio dropped or masked):
    there is no condition to name."""
    frames = len(clean) // samples_per_frame
    shape = (frames, samples_per_frame)
    clean = clean[: frames * samples_per_frame].astype(np.float64).reshape(shape)
    noise = noisy[: frames * samples_per_frame].astype(np.float64).reshape(shape) - clean
    speech, added = (clean**2).sum(axis=1), (noise**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = 10 * np.log10(speech / added)
    snr = np.clip(snr, -SNR_CAP_DB, SNR_CAP_DB)
    snr[(speech == 0) & (added == 0)] = np.nan
    return snr.astype(np.float32)


class Augmenter:
    """Applies :class:`AugmentOptions` to ``(video (T, roi, roi) uint8, face_found (T,), audio (samples_per_frame T,))``
    and crops the video to the model's ``crop_size``. Returns the three; each frame's SNR
    (:func:`frame_snr_db`) under the noise it mixed in: the condition of the frame, known exactly
    because the recipe made it (``gate_snr_supervision`` teaches the gate from it); and the frames
    the video was moved later against the audio (:func:`shift_video`; 0 when not shifted), which
    ``xattn_sync_supervision`` teaches the cross-attention from."""

    def __init__(self, options: AugmentOptions, preprocessing: Preprocessing = Preprocessing()) -> None:
        self.options = options
        self.spec = preprocessing
        self._folder = NoiseFolder(options.noise_dir) if options.noise_dir else None

    def __call__(self, video: np.ndarray, face_found: np.ndarray, audio: np.ndarray, rng: np.random.Generator,
                 others: list[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        o = self.options
        video, face_found, audio = self._crop(video, rng), face_found.copy(), audio.astype(np.float32)
        if rng.random() < o.flip_prob:
            video = video[:, :, ::-1]
        if o.pad_prob and rng.random() < o.pad_prob:  # no draw when off: the same stream as before
            video, face_found, audio = self._pad(video, face_found, audio, rng)
        if o.lead_in_prob and rng.random() < o.lead_in_prob:  # likewise
            lead_in, trail = int(rng.integers(0, o.max_lead_in_frames + 1)), int(rng.integers(0, o.max_trail_frames + 1))
            video, face_found, audio = with_room_tone(video, face_found, audio, lead_in, trail,
                                                      rng.uniform(*o.room_tone_dbfs_range), rng, self.spec.samples_per_frame)
        offset = 0
        if o.offset_prob and rng.random() < o.offset_prob:  # likewise
            offset = int(rng.integers(-o.max_offset_frames, o.max_offset_frames + 1))
            video, face_found = shift_video(video, face_found, offset)
        clean = audio
        if rng.random() < o.noise_prob:
            audio = mix_at_snr(audio, self._noise(len(audio), rng, others), rng.uniform(*o.snr_db_range))
        frames, step = len(video), self.spec.samples_per_frame
        if rng.random() < o.drop_audio_prob:
            audio = clean = np.zeros_like(audio)
        elif rng.random() < o.drop_video_prob:
            video, face_found = np.zeros_like(video), np.zeros_like(face_found)
        elif rng.random() < o.blank_span_prob and frames > 2:
            start, stop = sorted(rng.integers(0, frames, 2))
            video[start:stop + 1], face_found[start:stop + 1] = 0, False
        if o.face_gap_prob and rng.random() < o.face_gap_prob:  # no draw when off: the same stream as before
            for _ in range(int(rng.integers(1, o.max_face_gaps + 1))):
                width = min(int(rng.integers(1, o.max_face_gap_frames + 1)), frames)
                start = int(rng.integers(0, frames - width + 1))
                video[start:start + width], face_found[start:start + width] = 0, False
        if rng.random() < o.time_mask_prob and frames > 4:
            width = int(rng.integers(1, max(frames // 5, 2)))
            start = int(rng.integers(0, frames - width))
            video[start:start + width] = 0
            audio[start * step:(start + width) * step] = 0
            clean[start * step:(start + width) * step] = 0  # this function's own copy (astype above)
        return np.ascontiguousarray(video), face_found, audio, frame_snr_db(clean, audio, step), offset

    def _crop(self, video: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.spec.check_roi(video)
        offset = None
        if self.options.random_crop:
            offset = tuple(int(i) for i in rng.integers(0, self.spec.roi_size - self.spec.crop_size + 1, 2))
        rows, columns = self.spec.crop_box(offset)
        return video[:, rows, columns].copy()

    def _pad(self, video: np.ndarray, face_found: np.ndarray, audio: np.ndarray, rng: np.random.Generator):
        before, after = (int(n) for n in rng.integers(0, self.options.max_pad_frames + 1, 2))
        frames, step = ((before, after),), self.spec.samples_per_frame
        audio = np.pad(audio[: len(video) * step], ((before * step, after * step),))
        return np.pad(video, frames + ((0, 0), (0, 0)), mode="edge"), np.pad(face_found, frames, mode="edge"), audio

    def _noise(self, length: int, rng: np.random.Generator, others: list[np.ndarray]) -> np.ndarray:
        kinds = [k for k in self.options.noise_types if k != "babble" or len(others) > 0]
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "white":
            return white_noise(length, rng)
        if kind == "babble":
            return babble(list(others), length, rng)
        return self._folder.sample(length, rng)
