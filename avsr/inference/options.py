"""How a file is transcribed: :class:`TranscribeOptions`, in a module light enough for the command line to
read its defaults without importing the model (torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from avsr.errors import OptionError
from avsr.preprocessing import MODEL_MODES, TRANSCRIBE_DETECT_EVERY, VAD_THRESHOLD

if TYPE_CHECKING:
    from avsr.io.vad import VadOptions

MODES = ("auto",) + MODEL_MODES  # auto: chosen per file
DECODERS = ("auto", "ctc", "joint")
# Joint decoding scores int(1.5 * beam) candidates of each of beam hypotheses over every frame of a region: memory
# and time grow with the beam squared (beam 100, a 20 s region: 7.5 M scores a step; 1000: 750 M, gigabytes).
MAX_BEAM = 100  # the reference decodes with 40
MAX_BATCH = 64  # 30 s windows per forward pass
LM_WEIGHT_RANGE = (0.0, 20.0)  # torchaudio's default is 2 (the LM's log-probability added per word, times this)


@dataclass(frozen=True)
class TranscribeOptions:
    """How a file is transcribed.

    ``mode`` ``auto`` picks per file: no audio track -> ``video``; no face anywhere -> ``audio``;
    otherwise ``av``, where the gate and the ``face_found`` mask handle stretches without a face.
    ``decoder``: ``auto`` (the model's own: CTC for avsr's models, joint CTC/attention beam search for an
    imported auto_avsr model), ``ctc`` or ``joint``. ``beam_size`` None: the decoder's default (CTC: 1, greedy;
    joint: the model's, 40). A CTC beam over 1 runs torchaudio's CTC beam search, with
    ``lexicon`` (a word list or manifest) and ``lm`` (KenLM) when given. ``vad``: the model reads only
    the file's speech regions (:mod:`avsr.inference.regions`); off, it reads the whole file.
    """

    mode: str = "auto"
    decoder: str = "auto"
    beam_size: int | None = None
    lexicon: str | None = None
    lm: str | None = None
    lm_weight: float = 2.0
    word_score: float = 0.0
    cut_pause_s: float = 0.2  # the recording is cut into chunks at pauses in the audio this long ...
    window_s: float = 30.0  # ... and a chunk longer than this runs in windows this long ...
    overlap_s: float = 2.0  # ... overlapping by this much; each keeps the frames far from its edges
    batch_size: int = 4  # windows per forward pass
    # Each chunk ends with at least this much quiet, topped up with digital silence and its last crop held, as the
    # recipe's clips end (0.24 s or more after the last word): the model's CTC spikes come up to ~0.3 s after the
    # sound, and a chunk cut soon after its last word lost it. Each is read from lead_s before its first speech
    # frame (with vad): the quiet before a turn, a face waiting to speak, cost its first word. Not for imported
    # models, which read utterances. docs/history/2026-12-07.md, "Quiet around each chunk".
    tail_s: float = 0.24
    lead_s: float = 0.04
    pause_s: float = 0.4  # a pause this long splits speech into segments
    max_segment_s: float = 20.0  # longer speech is cut at its longest pause
    detect_every: int = TRANSCRIBE_DETECT_EVERY  # run the face landmarker on every k-th frame (see there)
    av_sync: str = "auto"  # auto: estimate the audio-video offset and undo it beyond SYNC_MS; off
    attention: bool = False  # return an xattn model's attended offset and peak per frame
    crop_memory_mb: float | None = 128.0  # a file's mouth crops beyond this wait on disk, read a window at a time
    audio_memory_mb: float | None = 32.0  # ... and its audio beyond this (about 8 minutes)
    # The model reads windows while the file's later crops are cut (avsr.inference.stream). None: where the model
    # has a device of its own; on 2 CPU cores it saved no time and took 120 MB more (docs/history/2026-12-02.md).
    read_while_cutting: bool | None = None
    vad: bool = True  # read only the speech regions (avsr.io.vad); off: the whole file, speech or not
    vad_threshold: float = VAD_THRESHOLD  # a frame whose speech probability reaches this is speech
    # Word starts and ends moved onto the audio's energy envelope (avsr.decoding.boundaries; not in video mode).
    refine_words: bool = True
    # Track every face and read the one speaking in each frame (avsr.inference.speaker); off: the largest face.
    every_face: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"mode={self.mode!r}; use one of {', '.join(MODES)}")
        if self.av_sync not in ("auto", "off"):
            raise OptionError(f"av_sync={self.av_sync!r}; use auto or off")
        if self.decoder not in DECODERS:
            raise OptionError(f"decoder={self.decoder!r}; use one of {', '.join(DECODERS)}")
        if self.beam_size is not None and not 1 <= self.beam_size <= MAX_BEAM:
            raise OptionError(f"beam_size={self.beam_size}; use 1 (greedy) to {MAX_BEAM}")
        if not 0 <= self.tail_s <= 2:  # also false for NaN
            raise OptionError(f"tail_s={self.tail_s}; use 0 (none) to 2 seconds")
        if not 0 <= self.lead_s <= 10:
            raise OptionError(f"lead_s={self.lead_s}; use 0 to 10 seconds")
        low, high = LM_WEIGHT_RANGE
        if not low <= self.lm_weight <= high:  # also false for NaN
            raise OptionError(f"lm_weight={self.lm_weight}; use a number from {low:g} to {high:g}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise OptionError(f"batch_size={self.batch_size}; use 1 to {MAX_BATCH}")
        if not 0 <= 2 * self.overlap_s < self.window_s:
            raise OptionError(f"overlap_s={self.overlap_s} must be under half of window_s={self.window_s}")
        if not 0.0 < self.vad_threshold < 1.0:
            raise OptionError(f"vad_threshold={self.vad_threshold}; use a probability between 0 and 1")

    @property
    def vad_options(self) -> VadOptions | None:
        """How speech regions are found (None: segmentation off)."""
        from avsr.io.vad import VadOptions

        return VadOptions(threshold=self.vad_threshold) if self.vad else None
