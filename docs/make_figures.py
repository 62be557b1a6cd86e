"""Regenerate the figures in README.md:

    python docs/make_figures.py

- docs/lip_roi_carphone.png: the lip-ROI contact sheet of the carphone clip.
- docs/synth_two_speakers.png: two synthetic speakers saying the same GRID sentence (mouth crops
  cut by the lip-ROI stage from the mp4 files `avsr synth` writes), one row each.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from avsr.io.lip_roi import extract_lip_roi
from avsr.io.preview import contact_sheet, save_contact_sheet
from avsr.synth.corpus import SynthOptions, UtteranceJob, load_faces, make_speakers, speaker_rig
from avsr.synth.face_rig import MouthAnimator
from avsr.synth.tts import Synthesizer
from avsr.synth.utterance import render_utterance

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
SENTENCE = "place blue at f two now"


def synth_rows(tmp: Path) -> np.ndarray:
    faces = load_faces(None)
    speakers = make_speakers(SynthOptions(speakers=6, test_speakers=2), faces)
    rows = []
    for speaker in speakers[:2]:
        job = UtteranceJob(speaker.id, SENTENCE, speaker, f"{speaker.id}.mp4", seed=1)
        render_utterance(job, MouthAnimator(speaker_rig(faces, speaker, 224)), Synthesizer(), tmp)
        roi = extract_lip_roi(tmp / f"{speaker.id}.mp4")
        roi.roi, roi.mouth_landmarks = roi.roi[:40], roi.mouth_landmarks[:40]  # the first 1.6 s
        roi.face_found, roi.timestamps_s = roi.face_found[:40], roi.timestamps_s[:40]
        rows.append(contact_sheet(roi, columns=20, max_tiles=20, landmarks=False))
    return np.concatenate(rows)


def main() -> None:
    save_contact_sheet(extract_lip_roi(ROOT / "tests" / "fixtures" / "carphone_pristine.mp4"), DOCS / "lip_roi_carphone.png")
    with tempfile.TemporaryDirectory() as tmp:
        sheet = synth_rows(Path(tmp))
    cv2.imwrite(str(DOCS / "synth_two_speakers.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
