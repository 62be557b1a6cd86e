"""Shared fixtures: the real media in tests/fixtures (see ATTRIBUTION.md there)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CARPHONE = FIXTURES / "carphone_pristine.mp4"  # 176x144, 29.97 fps, 120 frames, no audio
MULTI_FACE = FIXTURES / "multi_face.jpg"
SPEECH = FIXTURES / "sense_and_sensibility_01_austen_64kb-0880.wav"  # 16 kHz mono, 2.99 s


def read_rgb_frames(path: Path) -> np.ndarray:
    """Every decoded frame at the file's own rate, with no resampling: ``(T, H, W, 3) uint8``."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    import librosa

    audio, sample_rate = librosa.load(path, sr=None, mono=True)
    return audio.astype(np.float32), sample_rate


def synth_clips(folder: Path, num_utterances: int, speakers: int, seed: int) -> list[dict]:
    """A fresh synthetic corpus (``avsr synth``, one val and one test speaker): per utterance its
    ``id``, ``video`` path, ``text`` and the synthesiser's word timings (``words``: dicts of text,
    start_s, end_s), train first, then val, then test."""
    from avsr.synth.corpus import SynthOptions, synthesize_corpus

    records = synthesize_corpus(folder, SynthOptions(num_utterances=num_utterances, speakers=speakers,
                                                     test_speakers=1, val_speakers=1, seed=seed), progress=False)
    clips = []
    for record in records["train"] + records["val"] + records["test"]:
        video = folder / record["video"]
        clips.append({"id": record["id"], "video": video, "text": record["text"],
                      "words": json.loads(video.with_suffix(".json").read_text())["words"]})
    return clips


@pytest.fixture(scope="session")
def carphone_frames() -> np.ndarray:
    return read_rgb_frames(CARPHONE)
