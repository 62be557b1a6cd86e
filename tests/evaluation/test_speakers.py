"""``avsr evaluate`` on clips with several faces and speaker truth: the shared test corpus's test speakers taking
turns (tests/conftest.py ``conversation_corpus``), read by the embedded model as ``avsr transcribe`` reads them."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from avsr.errors import OptionError
from avsr.evaluation.options import EvaluateOptions
from avsr.evaluation.run import evaluate, format_table
from avsr.evaluation.speakers import average_precision, has_speaker_truth
from avsr.evaluation.sweep import SweepRow, write_results
from avsr.models.loader import load_model


@pytest.fixture(scope="module")
def model():
    return load_model("synth-grid-tiny")


@pytest.fixture(scope="module")
def scored(conversation_corpus, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("speakers")
    result = evaluate({"tiny": model}, conversation_corpus / "test.jsonl",
                      EvaluateOptions(modes=("av", "audio"), output_dir=str(out)))
    return result.rows, out


def test_the_speaking_face_is_scored_per_frame_with_map_in_the_tables(scored, conversation_corpus):
    rows, out = scored
    av, audio = rows
    assert (av.mode, audio.mode) == ("av", "audio") and av.utterances == len(
        (conversation_corpus / "test.jsonl").read_text().splitlines())
    assert av.speaker_speech_accuracy >= 0.9 and av.speaker_map >= 0.8
    assert av.speaker_accuracy <= av.speaker_speech_accuracy + 0.05  # the quiet frames are scored too
    assert av.wer < 0.5 and av.mean_audio_weight is not None
    assert audio.speaker_accuracy is None and audio.speaker_map is None  # audio mode reads no face
    header = next(csv.reader((out / "results.csv").open()))
    assert {"speaker_accuracy", "speaker_speech_accuracy", "speaker_map"} <= set(header)
    assert "speaker mAP %" in (out / "results.md").read_text()
    assert "speaker frames %" in format_table(rows)


def test_faces_taken_for_each_other_score_low(scored, conversation_corpus, model, tmp_path):
    """The same clips with the truth's two faces swapped (each tile names the other speaker's picture): the faces
    read are now wrong in the speech frames, and the speaker scores rank the silent face first."""
    rows, _ = scored
    copy = tmp_path / "swapped"
    shutil.copytree(conversation_corpus, copy)
    for side_path in (copy / "test").glob("*.json"):
        side = json.loads(side_path.read_text())
        tiles = [face["tile"] for face in side["faces"]]
        for face, tile in zip(side["faces"], tiles[::-1]):
            face["tile"] = tile
        side_path.write_text(json.dumps(side))
    swapped = evaluate({"tiny": model}, copy / "test.jsonl", EvaluateOptions(modes=("video",))).rows[0]
    assert swapped.speaker_speech_accuracy <= 0.2 < rows[0].speaker_speech_accuracy
    assert swapped.speaker_map < rows[0].speaker_map - 0.3


def test_average_precision_is_the_voc_definition():
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1], bool)) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0], bool)) == 1.0
    assert average_precision(np.array([0.1, 0.8, 0.9]), np.array([1, 0, 0], bool)) == pytest.approx(1 / 3)
    assert np.isnan(average_precision(np.array([0.5]), np.array([0], bool)))


def test_single_face_manifests_and_tables_are_unchanged(synth_corpus, tmp_path):
    assert not has_speaker_truth(synth_corpus.folder / "test.jsonl")
    row = SweepRow("m", "av", "clean", None, None, 0.1, 0.05, 0.15, 0.05, 3, 0.5)
    assert format_table([row]).splitlines()[0] == (" SNR dB  mode     WER %   CER %  utts  audio weight  read as")
    write_results([row], tmp_path)
    header = next(csv.reader((tmp_path / "results.csv").open()))
    assert not any(name.startswith("speaker_") for name in header)
    assert "speaker" not in (tmp_path / "results.md").read_text()


def test_options_not_applied_to_such_clips_are_refused(conversation_corpus, model):
    with pytest.raises(OptionError, match="--av-offset-ms"):
        evaluate({"tiny": model}, conversation_corpus / "test.jsonl", EvaluateOptions(av_offsets_ms=(40,)))
