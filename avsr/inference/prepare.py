"""The first stage of transcription: one media file decoded into what the model reads.

:func:`prepare_input` gives a :class:`PreparedInput`: 16 kHz audio and 96x96 mouth crops at 25 fps on
one clock, with where a face was found, the crops' affine maps and the lips' movement (for the
audio-video offset). A batch runs it in threads or worker processes while the model reads the file
before (:mod:`avsr.inference.batch`). A video's audio is read first, so that, given the transcriber
(``reader``), the model can already read the windows cut so far (:mod:`avsr.inference.stream`).
Crops and audio of a long file wait on disk (:class:`~avsr.io.spool.FrameSpool`).
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from avsr.files import file_sha256
from avsr.inference.chunks import Window
from avsr.inference.speaker import active_face, face_signals, held_through_pauses, speaker_scores, speaking_track
from avsr.inference.stream import EarlyForward, WindowReader
from avsr.inference.sync import mouth_opening, mouth_signal
from avsr.io.face_rois import PER_FACE, FaceRois, faces_of_pieces
from avsr.io.lip_roi import LipRoi, LipRoiOptions, extract_lip_roi, header_frames
from avsr.io.media import (MediaError, MediaWarning, MissingStreamWarning, load_media, probe_video, read_audio_into,
                           stream_ends)
from avsr.io.spool import FrameSpool
from avsr.parallel import Cancelled
from avsr.preprocessing import FRAME_S, ROI_SIZE, ROI_STYLES, SAMPLES_PER_FRAME, TRANSCRIBE_DETECT_EVERY, VIDEO_FPS

MIN_FRAMES = 5  # 0.2 s: a clip shorter than this holds no word (a 1-frame clip once "transcribed" as "n")
LENGTHS_DIFFER_S = 1.0  # audio and video lengths further apart than this are said (a warning)


@dataclass
class PreparedInput:
    """A decoded file: mouth crops, ``face_found`` and audio on the same 25 Hz clock."""

    path: str
    sha256: str
    roi: np.ndarray | FrameSpool  # (T, 96, 96) uint8, zero without a face; on disk for a long file
    face_found: np.ndarray  # (T,) bool
    audio: np.ndarray | FrameSpool  # (640 T,) float32, zero without an audio track; on disk for a long file
    has_audio: bool
    has_video: bool
    prepare_s: float
    transforms: np.ndarray | None = None  # (T, 2, 3) image-to-crop affine maps, NaN without a face
    warnings: list[str] = field(default_factory=list)  # what decoding noticed (e.g. streams ending early)
    # (T,) the lips' movement (avsr.inference.sync.mouth_signal), NaN without a face
    mouth_signal: np.ndarray | None = None
    early_mode: str | None = None  # the mode the model read windows in while the file was cut ...
    early: dict[tuple[Window, ...], list] | None = None  # ... and their outputs (avsr.inference.stream)
    # (T,) the id of the face speaking in each frame, whose crops are read, -1 where none (lost, or nobody in view
    # speaks; through a short pause the crops read stay the speaker's, speaker.held_through_pauses); its boxes and
    # every other face's: (F, T, 4) [x0, y0, x1, y1] source pixels, NaN where not found.
    face_ids: np.ndarray | None = None
    face_boxes: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return len(self.face_found)

    def close(self) -> None:
        """Remove the crops' and the audio's temporary files, if they were spooled to them."""
        for spooled in (self.roi, self.audio):
            _close_spool(spooled)


@dataclass
class _Video:
    """What the video stream gave: crops and their companions, and the model's early outputs."""

    crops: np.ndarray | FrameSpool
    found: np.ndarray
    transforms: np.ndarray | None = None
    opening: np.ndarray | None = None
    early: tuple[str, dict] | None = None
    boxes: np.ndarray | None = None  # (T, 4) the face's box
    faces: FaceRois | None = None  # several faces: every one (read from the speaking one once the audio is in)
    ids: np.ndarray | None = None  # (T,) with several faces: the one read in each frame, -1 none


def prepare_input(path: str | Path, detect_every: int = TRANSCRIBE_DETECT_EVERY, crop_memory_mb: float | None = None,
                  audio_memory_mb: float | None = None, cancel: threading.Event | None = None,
                  landmarkers: int = 1, reader: WindowReader | None = None,
                  roi_style: str = ROI_STYLES[0], every_face: bool = True) -> PreparedInput:
    """Decode ``path`` for transcription. Raises :class:`MediaError` for a file that cannot be used,
    :class:`~avsr.parallel.Cancelled` once ``cancel`` is set (checked at every video frame).
    ``landmarkers``: face landmarkers taking the frames in turn (:func:`~avsr.io.lip_roi.iter_lip_roi`).
    ``reader``: the transcriber that will recognise the file, to read its windows while the rest is
    still being cut (:class:`~avsr.inference.stream.EarlyForward`; its outputs go in ``early``).

    Crops that would take more than ``crop_memory_mb`` are spooled to a temporary file
    (:class:`~avsr.io.spool.FrameSpool`; None: kept in memory), and a video's audio beyond
    ``audio_memory_mb`` too; :meth:`PreparedInput.close` removes them. ``roi_style``: how the mouth crops
    are cut (the model's ``preprocessing.roi_style``). ``every_face``: every face is tracked; where there
    are several, each frame is read from the one speaking (:mod:`avsr.inference.speaker`), and not at
    all (``face_found`` False) where nobody in view speaks. Off, or with one face, the largest face is
    read throughout."""
    started = time.perf_counter()
    path = Path(path)
    sha256 = file_sha256(path) if path.is_file() else ""
    audio = video = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MediaWarning)
            probe = probe_video(path)
            lengths, shared_s = (None, None) if probe is None else _shared_length(path)
            hint = None if probe is None else header_frames(probe)  # 0: the header gives no duration
            # A video's audio is read first, as long as its header says and a second more: the pauses come
            # from it (EarlyForward). Without a duration, it is read after the video, at the video's length.
            ahead = None if hint is None else (hint + VIDEO_FPS) * SAMPLES_PER_FRAME
            audio = None if hint == 0 else _read_audio(path, ahead, audio_memory_mb)
            if probe is not None:
                video = _cut_video(path, audio, hint, LipRoiOptions(detect_every=detect_every, roi_style=roi_style),
                                   crop_memory_mb, cancel, landmarkers, reader, every_face)
                if shared_s is not None:  # the audio ends well before the video: the part with both is read
                    video = _cut_to(video, max(round(shared_s * VIDEO_FPS), 1))
                audio = _audio_of_length(path, audio, len(video.found) * SAMPLES_PER_FRAME, audio_memory_mb,
                                         read_ahead=hint != 0)
                if video.faces is not None:
                    video = _read_speaker(video, audio)
        notes = list(dict.fromkeys([str(w.message) for w in caught if issubclass(w.category, MediaWarning)]
                                   + ([lengths] if lengths else [])))
        for other in caught:  # recording catches every thread's warnings (batch prefetch): the rest go on, but
            # a missing track, which the mode chosen for the file says (avsr.inference.transcribe.choose_mode)
            if not issubclass(other.category, (MediaWarning, MissingStreamWarning)):
                warnings.warn_explicit(other.message, other.category, other.filename, other.lineno,
                                       source=other.source)
        if probe is None:  # audio alone: no face on its frames
            frames = int(np.ceil(len(audio) / SAMPLES_PER_FRAME)) if audio is not None else 0
            video = _Video(np.zeros((frames, ROI_SIZE, ROI_SIZE), np.uint8), np.zeros(frames, bool))
        has_audio = audio is not None
        _check_content(path, has_audio, video.found)
    except BaseException:  # a file that fails (or is cancelled) leaves no temporary file behind
        _close_spool(audio)
        _close_spool(None if video is None else video.crops)
        raise
    audio = _audio_on_frames(audio, len(video.found), has_video=probe is not None)
    ids = np.where(video.found, 0, -1) if video.ids is None else video.ids  # one face: id 0 where found
    boxes = video.faces.boxes if video.faces is not None else None if video.boxes is None else video.boxes[None]
    return PreparedInput(str(path), sha256, video.crops, video.found, audio, has_audio, probe is not None,
                         time.perf_counter() - started, video.transforms, notes, video.opening,
                         *(video.early or (None, None)), face_ids=ids, face_boxes=boxes)


def _read_audio(path: Path, samples: int | None, memory_mb: float | None) -> np.ndarray | FrameSpool | None:
    """The file's audio, ``samples`` long (zeros after its end; None: an audio file's own length), or
    None without an audio track. Beyond ``memory_mb`` it waits in a temporary file."""
    try:
        if samples is None:
            return load_media(path, video=False).audio
        audio, decoded = read_audio_into(path, samples, spool_above_mb=memory_mb)
    except MediaError as error:
        if error.reason != "no_audio":
            raise
        return None
    if not decoded:
        _close_spool(audio)
        return None
    return audio


def _shared_length(path: Path) -> tuple[str | None, float | None]:
    """Where the header's audio and video differ by more than LENGTHS_DIFFER_S (common from editors and
    screen recorders): a note with both durations, and the seconds they share where the audio is the shorter
    (the video is cut there; an audio track longer than the video is cut to it anyway). Else (None, None).
    The note is returned, not warned: a batch's threads would catch each other's warnings."""
    video_s, audio_s = stream_ends(path)
    if video_s is None or audio_s is None or abs(video_s - audio_s) <= LENGTHS_DIFFER_S:
        return None, None
    note = (f"its audio ({audio_s:.2f} s) and video ({video_s:.2f} s) differ in length; transcribing the "
            f"{min(audio_s, video_s):.2f} s they share")
    return note, audio_s if audio_s < video_s else None


def _cut_to(video: _Video, frames: int) -> _Video:
    """``video``'s first ``frames`` frames (the model's early outputs, read over all of them, are dropped)."""
    if frames >= len(video.found):
        return video
    if video.faces is not None:  # several faces: none read yet
        faces = FaceRois(**{name: getattr(video.faces, name)[:, :frames] for name in PER_FACE},
                         timestamps_s=video.faces.timestamps_s[:frames], fps=video.faces.fps)
        return _Video(None, video.found[:frames], faces=faces)
    if isinstance(video.crops, FrameSpool):
        video.crops.truncate(frames)
        crops = video.crops
    else:
        crops = video.crops[:frames]
    cut = [None if a is None else a[:frames] for a in (video.transforms, video.opening)]
    return _Video(crops, video.found[:frames], *cut, boxes=None if video.boxes is None else video.boxes[:frames])


def _cut_video(path: Path, audio, frames_hint: int, options: LipRoiOptions, crop_memory_mb: float | None,
               cancel: threading.Event | None, landmarkers: int, reader: WindowReader | None,
               every_face: bool = False) -> _Video:
    """The video's mouth crops, cut while ``reader`` (if given) reads the windows cut so far; with
    ``every_face`` and several faces found, every face's (``faces``), none read yet (:func:`_read_speaker`)."""
    others: list[list[LipRoi]] | None = [] if every_face else None
    early = None if reader is None or audio is None else EarlyForward(reader, audio, frames_hint, has_audio=True)
    try:
        roi = extract_lip_roi(path, options, spool_above_mb=crop_memory_mb,
                              cancel=cancel, landmarkers=landmarkers,
                              on_piece=None if early is None else early.feed, frames_hint=frames_hint,
                              other_faces=others)
    finally:
        outputs = None if early is None else (early.mode, early.finish())
    try:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{path}: stopped before its lip ROIs were cut")
        faces = (faces_of_pieces(roi, others, options) if others else None) or [roi]  # none kept: face 0, lost
        if len(faces) > 1 or faces[0] is not roi:  # into memory; the windows read early were face 0's: not used
            spooled = roi.roi
            faces = [replace(face, roi=np.asarray(face.roi[0:len(face.face_found)])) for face in faces]
            _close_spool(spooled)
            roi, outputs = faces[0], None
        if len(faces) > 1:
            rois = FaceRois.from_faces(faces)
            return _Video(None, rois.face_found.any(axis=0), faces=rois)
        opening = mouth_signal(roi.roi, roi.face_found, mouth_opening(roi.mouth_landmarks))
    except BaseException:  # the crops' temporary file goes with the file's failure
        _close_spool(roi.roi)
        raise
    return _Video(roi.roi, roi.face_found, roi.transforms, opening, outputs, boxes=roi.boxes)


def prepared_from_faces(path: str | Path, rois: FaceRois, audio: np.ndarray, signals: np.ndarray | None = None,
                        active: np.ndarray | None = None) -> PreparedInput:
    """A video already cut into every face's crops (``rois``, e.g. :func:`~avsr.io.face_rois.extract_face_rois`)
    with its 16 kHz ``audio`` ``(640 T,)``, prepared as :func:`prepare_input` prepares a file: with several faces,
    each frame read from the face speaking (:func:`_read_speaker`); with one, that face throughout. For reading
    one clip under several sounds (noise mixed in: who speaks is decided on the sound given) without cutting its
    crops again. ``signals``: :func:`~avsr.inference.speaker.face_signals` of ``rois`` if the caller has them;
    ``active`` ``(T,)``: with several faces, the face to read in each frame (-1 none) where it is known (a bench's
    truth), in place of the one decided."""
    frames = len(rois)
    audio = np.pad(audio[: frames * SAMPLES_PER_FRAME], (0, max(frames * SAMPLES_PER_FRAME - len(audio), 0)))
    if rois.faces > 1:
        video = _read_speaker(_Video(None, rois.face_found.any(axis=0), faces=rois), audio, signals, active)
        ids = video.ids
    else:
        face = rois.face(0)
        opening = mouth_signal(face.roi, face.face_found, mouth_opening(face.mouth_landmarks)) if signals is None \
            else signals[0]
        video = _Video(face.roi, face.face_found, face.transforms, opening)
        ids = np.where(face.face_found, 0, -1)
    return PreparedInput(str(path), "", video.crops, video.found, audio.astype(np.float32, copy=False), True, True,
                         0.0, video.transforms, [], video.opening, face_ids=ids, face_boxes=rois.boxes)


def _read_speaker(video: _Video, audio, signals: np.ndarray | None = None, active: np.ndarray | None = None) -> _Video:
    """Several faces: the crops of the face speaking in each frame (:func:`~avsr.inference.speaker.active_face`
    from their mouths and ``audio``; or ``active``, given), held on it through a short pause
    (:func:`~avsr.inference.speaker.held_through_pauses`), not found where nobody in view speaks for longer, so
    that the gate leans on the audio. ``ids``: the face speaking (-1 in the pauses too)."""
    rois = video.faces
    signals = face_signals(rois) if signals is None else signals
    active = active_face(speaker_scores(rois, audio, signals)) if active is None else active
    read = held_through_pauses(active)
    track = speaking_track(rois, read)
    opening = np.where(track.face_found, signals[np.maximum(read, 0), np.arange(len(read))], np.nan)
    return _Video(track.roi, track.face_found, track.transforms, opening, faces=rois,
                  ids=np.where(track.face_found & (active >= 0), active, -1))


def _check_content(path: Path, has_audio: bool, found: np.ndarray) -> None:
    if not has_audio and not found.any():
        raise MediaError(path, "no_audio", "has neither an audio track nor a visible face; nothing to transcribe")
    if len(found) == 0:
        raise MediaError(path, "empty", "holds no frames and no audio; check the file")
    if len(found) < MIN_FRAMES:
        raise MediaError(path, "too_short", f"is {len(found) * FRAME_S:.2f} s long, too short to hold a word "
                         f"(at least {MIN_FRAMES * FRAME_S:.2f} s); check the file")


def _audio_on_frames(audio, frames: int, has_video: bool) -> np.ndarray | FrameSpool:
    """The audio as long as the ``frames`` (silence without an audio track). A video's audio already is
    (:func:`_audio_of_length`); an audio file's frames are counted from its own length."""
    samples = frames * SAMPLES_PER_FRAME
    if audio is None:
        return np.zeros(samples, np.float32)
    if has_video:
        return audio
    if len(audio) < samples:
        audio = np.pad(audio, (0, samples - len(audio)))
    return audio[:samples].astype(np.float32, copy=False)


def _audio_of_length(path: Path, audio, samples: int, memory_mb: float | None, read_ahead: bool):
    """A video's audio as long as its frames turned out to be (``samples``): read now where it was not
    read ahead (no duration in the header) or fell short (the video ran longer than its header said),
    else the audio read ahead, cut to that length (None: no audio track)."""
    if not read_ahead or (audio is not None and len(audio) < samples):
        _close_spool(audio)
        return _read_audio(path, samples, memory_mb)
    if isinstance(audio, FrameSpool):
        audio.truncate(samples)
        return audio
    return None if audio is None else audio[:samples]


def _close_spool(frames) -> None:
    if isinstance(frames, FrameSpool):
        frames.close()
