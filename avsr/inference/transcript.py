"""What :func:`~avsr.inference.transcribe.transcribe` gives: a :class:`Transcript` of :class:`Segment` s of words,
with its one JSON form (:meth:`Transcript.to_dict`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from avsr.decoding.align import WordTiming
from avsr.preprocessing import VIDEO_FPS


@dataclass(frozen=True)
class Word(WordTiming):
    """A word with start_s, end_s, confidence and the face that spoke it: ``{"id": int, "box": [x0, y0, x1,
    y1]}`` (source-frame pixels, at the word's middle frame), None where no face was read."""

    face: dict | None = None


@dataclass
class Segment:
    """A stretch of speech between pauses."""

    start_s: float
    end_s: float
    text: str
    words: list[Word]
    no_speech_prob: float = 0.0  # one minus the segment's mean speech probability (avsr.inference.regions)
    face: dict | None = None  # the face of most of its words (its box at the segment's middle frame), as Word's


@dataclass
class Transcript:
    """Everything :func:`transcribe` found in one file. Times are seconds from the file's start."""

    path: str
    text: str
    segments: list[Segment]
    mode: str  # the mode used: av, audio or video
    model_id: str
    input_sha256: str
    duration_s: float
    face_found_rate: float  # share of frames with a tracked face
    audio_weight: list[float]  # the gate's weight on audio per 25 Hz frame (1 audio only, 0 video only; NaN,
    # null in the .json, outside the speech regions, where the model did not read);
    # empty for a fusion without weights (concat, sum)
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)  # prepare / recognise seconds
    # The estimated audio-video offset (ms, positive: the video lags) and its confidence (0-1), from
    # av_sync_source (avsr.inference.sync): "attention", where the audio frames of an xattn model taught
    # where the lips are looked (confidence: the share of frames that agree), else "mouth", the mouth's
    # movement against the speech envelope (confidence: the peak's margin over its rivals). None
    # without both streams or with too little to go on. av_sync_shift_ms: what was undone before
    # recognition (0: nothing).
    av_offset_ms: float | None = None
    av_sync_confidence: float | None = None
    av_sync_source: str | None = None
    av_sync_shift_ms: int = 0
    # With TranscribeOptions(attention=True) and an xattn model: per 25 Hz frame, the video frame the
    # audio attended to most (offset in frames, positive: later) and that attention's weight (peakedness).
    attention_offset_frames: list[int] | None = None
    attention_peak: list[float] | None = None
    # [start_s, end_s] of each stretch the model read (TranscribeOptions.vad), to the millisecond.
    speech_regions: list[tuple[float, float]] = field(default_factory=list)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def to_dict(self) -> dict:
        """The transcript as JSON-ready values; times to the millisecond, probabilities to three places."""
        out = asdict(self)
        for segment in out["segments"]:
            segment["start_s"], segment["end_s"] = round(segment["start_s"], 3), round(segment["end_s"], 3)
            segment["words"] = [_rounded(w) for w in segment["words"]]
        out["words"] = [_rounded(asdict(w)) for w in self.words]
        out["audio_weight"] = [round(w, 3) if w == w else None for w in self.audio_weight]  # null: not read
        out["duration_s"] = round(self.duration_s, 3)
        if self.attention_peak is None:  # asked for with --attention only
            del out["attention_offset_frames"], out["attention_peak"]
        else:
            out["attention_peak"] = [round(p, 3) for p in self.attention_peak]
        return out


def _rounded(word: dict) -> dict:
    return {**word, "start_s": round(word["start_s"], 3), "end_s": round(word["end_s"], 3),
            "confidence": round(word["confidence"], 3), "face": word.get("face")}


def face_at(ids: np.ndarray | None, boxes: np.ndarray | None, start_s: float, end_s: float, shift: int = 0,
            face: int | None = None) -> dict | None:
    """The face read over ``[start_s, end_s)``: ``face`` if given, else the id read in most of its frames
    (``ids (T,)``, -1 none), with its box in ``boxes (F, T, 4)`` at the middle frame (or the nearest
    frame of the stretch where it was found); None where no face was read. ``shift``: the frames the
    video was moved back by before recognition (the boxes are on the video's own clock)."""
    if ids is None or boxes is None or len(ids) == 0:
        return None
    first = min(int(start_s * VIDEO_FPS), len(ids) - 1)
    frames = np.arange(first, max(min(int(np.ceil(end_s * VIDEO_FPS)), len(ids)), first + 1))
    if face is None:
        read = ids[frames]
        if not (read >= 0).any():
            return None
        face = int(np.bincount(read[read >= 0]).argmax())
    middle = min(int((start_s + end_s) / 2 * VIDEO_FPS), len(ids) - 1)
    frames = np.clip(frames[np.argsort(np.abs(frames - middle), kind="stable")] + shift, 0, boxes.shape[1] - 1)
    found = [frame for frame in frames if np.isfinite(boxes[face, frame]).all()]
    return None if not found else {"id": face, "box": [round(float(v)) for v in boxes[face, found[0]]]}


def with_faces(segments: list[Segment], ids: np.ndarray | None, boxes: np.ndarray | None,
               shift: int = 0) -> list[Segment]:
    """``segments`` with the face of each word and segment (:func:`face_at`)."""
    out = []
    for segment in segments:
        words = [Word(w.word, w.start_s, w.end_s, w.confidence, face_at(ids, boxes, w.start_s, w.end_s, shift))
                 for w in segment.words]
        spoken = [w.face["id"] for w in words if w.face is not None]
        face = None if not spoken else face_at(ids, boxes, segment.start_s, segment.end_s, shift,
                                               max(set(spoken), key=spoken.count))
        out.append(Segment(segment.start_s, segment.end_s, segment.text, words, segment.no_speech_prob, face))
    return out
