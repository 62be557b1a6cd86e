"""What corpus ``avsr synth`` makes: :class:`SynthOptions`, in a module light enough for the command line to read
its defaults (no numpy, no espeak-ng)."""

from __future__ import annotations

from dataclasses import dataclass

from avsr.errors import OptionError
from avsr.synth import ENGLISH_VOICES, VARIETY_KINDS

MAX_FRAME_SIZE = 1080  # a frame side; each worker holds an utterance's frames (1080: about 90 MB a second)


@dataclass(frozen=True)
class SynthOptions:
    """What corpus to make."""

    num_utterances: int = 200
    speakers: int = 6
    test_speakers: int = 1  # speakers held out for the test split
    val_speakers: int = 1  # speakers held out for the validation split
    faces_dir: str | None = None  # photos to animate (default: the bundled ones)
    voices: tuple[str, ...] = ENGLISH_VOICES  # espeak-ng base voices to draw from
    text_file: str | None = None  # one sentence per line; default: the GRID grammar
    seed: int = 0
    frame_size: int = 224  # square video frames, pixels
    recording_floor: bool = True  # room tone 35-60 dB below the speech, per speaker (False: digital silence)
    face_variety: tuple[str, ...] = VARIETY_KINDS  # identity variety of training speakers (FaceLook.vary); () for none
    workers: int = 1

    def __post_init__(self) -> None:
        if self.num_utterances < 1 or self.speakers < 1:
            raise OptionError("num_utterances and speakers must be >= 1")
        if self.test_speakers < 0 or self.val_speakers < 0:
            raise OptionError(f"--test-speakers {self.test_speakers} --val-speakers {self.val_speakers}: use 0 or more")
        if not 0 <= self.seed < 2**32:
            raise OptionError(f"--seed {self.seed}: use a whole number from 0 to {2**32 - 1}")
        if self.workers < 1:
            raise OptionError(f"--workers {self.workers}: use 1 or more")
        if self.test_speakers + self.val_speakers >= self.speakers:
            raise OptionError(f"{self.test_speakers} test + {self.val_speakers} val speakers leave no training "
                             f"speaker out of {self.speakers}; raise --speakers or lower --test-speakers")
        unknown = set(self.face_variety) - set(VARIETY_KINDS)
        if unknown:
            raise OptionError(f"unknown face variety {', '.join(sorted(unknown))}; "
                             f"choose from {', '.join(VARIETY_KINDS)}")
        if not 96 <= self.frame_size <= MAX_FRAME_SIZE:
            raise OptionError(f"--frame-size {self.frame_size}: use 96 (the smallest that holds a face) to "
                              f"{MAX_FRAME_SIZE} pixels")

    @property
    def empty_splits(self) -> tuple[str, ...]:
        """The held-out splits that get speakers but no utterance: the speakers take turns (train first, then
        val, then test), so fewer utterances than speakers leave the last ones none."""
        first = {"val": self.speakers - self.test_speakers - self.val_speakers,
                 "test": self.speakers - self.test_speakers}
        counts = {"val": self.val_speakers, "test": self.test_speakers}
        return tuple(split for split in ("val", "test") if counts[split] and self.num_utterances <= first[split])


SPLITS = ("train", "val", "test")
MAX_FACES_PER_CLIP = 4  # as many faces as avsr lip-roi and avsr transcribe follow by default


@dataclass(frozen=True)
class ConversationOptions:
    """How ``avsr synth --faces-per-clip N`` lays a corpus's utterances out as conversations
    (:mod:`avsr.synth.conversation`). Ranges are drawn uniformly per clip or turn."""

    faces_per_clip: int = 2  # speakers in view, side by side, each a different speaker of the clip's split
    splits: tuple[str, ...] = SPLITS  # the splits made into conversations
    turns: tuple[int, int] = (2, 4)  # turns per clip (speakers alternate; a turn is one utterance)
    pause_s: tuple[float, float] = (0.15, 0.8)  # quiet between one turn's last word and the next turn's first ...
    overlap_share: float = 0.2  # ... except in this share of turns, which start before the last has ended ...
    overlap_s: tuple[float, float] = (0.1, 0.4)  # ... by this much (at most half of the turn before)
    edge_s: float = 0.4  # quiet before the first turn and after the last
    scale: tuple[float, float] = (0.8, 1.15)  # each face's size against the utterances' frames
    seed: int = 0
    workers: int = 1

    def __post_init__(self) -> None:
        if not 2 <= self.faces_per_clip <= MAX_FACES_PER_CLIP:
            raise OptionError(f"--faces-per-clip {self.faces_per_clip}: use 2 to {MAX_FACES_PER_CLIP} (1: avsr synth "
                              "without it)")
        unknown = [split for split in self.splits if split not in SPLITS]
        if unknown or not self.splits:
            raise OptionError(f"--splits {' '.join(self.splits)}: use one or more of {', '.join(SPLITS)}")
        if not 1 <= self.turns[0] <= self.turns[1]:
            raise OptionError(f"turns {self.turns}: use a range of 1 or more")
        if not 0 <= self.overlap_share <= 1 or min(self.pause_s + self.overlap_s + (self.edge_s,)) < 0:
            raise OptionError("pause_s, overlap_s and edge_s must be 0 or more, overlap_share from 0 to 1")
        if not 0 < self.scale[0] <= self.scale[1] <= 2:
            raise OptionError(f"scale {self.scale}: use sizes from above 0 to 2")
        if not 0 <= self.seed < 2**32:
            raise OptionError(f"--seed {self.seed}: use a whole number from 0 to {2**32 - 1}")
        if self.workers < 1:
            raise OptionError(f"--workers {self.workers}: use 1 or more")
