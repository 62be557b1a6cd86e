"""Shared fixtures: the real media in tests/fixtures (see ATTRIBUTION.md there), and one synthetic
corpus made once per test run for every test that needs clips, prepared features or manifests.

``python -m pytest`` runs the fast tests; ``python -m pytest --slow`` also runs the ones marked
``slow`` (end to end: training runs, noise sweeps and batches through the console script), as CI does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CARPHONE = FIXTURES / "carphone_pristine.mp4"  # 176x144, 29.97 fps, 120 frames, no audio
MULTI_FACE = FIXTURES / "multi_face.jpg"
SPEECH = FIXTURES / "sense_and_sensibility_01_austen_64kb-0880.wav"  # 16 kHz mono, 2.99 s
MUSIC = FIXTURES / "music_morning_coffee_8k_20-28s.wav"  # 8 kHz mono, 8.0 s

# The shared test corpus. Seed 221 gives test speakers (s05, s06) and a validation speaker (s04) whose faces
# the embedded model's training speakers never had (it held out biden.jpg#0, multi_face.jpg#1 and #4;
# RESULTS.md), and sentences outside its training corpus: tests/training checks both.
CORPUS_SEED = 221
CORPUS_UTTERANCES = 24  # s01-s03 train (12), s04 val (4), s05 and s06 test (8)
CORPUS_SPEAKERS = 6


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true",
                     help="also run the tests marked slow (end to end; CI runs them all)")


def pytest_report_header(config: pytest.Config) -> str:
    return "slow tests: " + ("included (--slow)" if config.getoption("--slow") else "deselected; --slow runs them")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


def read_rgb_frames(path: Path) -> np.ndarray:
    """Every decoded frame at the file's own rate, with no resampling: ``(T, H, W, 3) uint8``."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    import librosa

    audio, sample_rate = librosa.load(path, sr=None, mono=True)
    return audio.astype(np.float32), sample_rate


@pytest.fixture(scope="session")
def carphone_frames() -> np.ndarray:
    return read_rgb_frames(CARPHONE)


def one_line(result: subprocess.CompletedProcess, code: int, *names: str) -> str:
    """The single stderr line of a refused command, checked for its exit code and the names given."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("W0000", "I0000"))]
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, lines
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.05):
    """Poll ``condition()`` until it gives a true value, and return that value; fail naming ``what``
    once ``timeout_s`` seconds have passed without it (a test waits for what it needs, not a fixed time)."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        time.sleep(interval_s)
    return value


def avsr_main(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``avsr ARGS`` run by the console script's own function (``avsr.cli.main``) in this process, for commands
    refused before any work starts: its exit code (``main``'s return value, or that of the ``SystemExit`` it
    raises) and its output, as the installed command gives them. A traceback is an exception here, and fails
    the test as it would in the command's stderr."""
    from avsr.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    where, formatwarning, showwarning = Path.cwd(), warnings.formatwarning, warnings.showwarning  # main() sets its own
    try:
        os.chdir(cwd or where)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main([str(arg) for arg in args])
            except SystemExit as exit:  # argparse's errors; sys.exit("message") prints the message, exit 1
                code = exit.code if exit.code is None or isinstance(exit.code, int) else 1
                if isinstance(exit.code, str):
                    print(exit.code, file=sys.stderr)
    finally:
        os.chdir(where)
        warnings.formatwarning, warnings.showwarning = formatwarning, showwarning
    return subprocess.CompletedProcess(["avsr", *map(str, args)], code or 0, stdout.getvalue(), stderr.getvalue())


AVSR = str(Path(sys.executable).with_name("avsr"))  # the console script of this environment


@dataclass(frozen=True)
class SynthCorpus:
    """A synthetic corpus (``avsr synth``): ``folder`` holds its manifests, speakers.json and clips;
    ``clips`` lists every utterance, train first, then val, then test, each as a dict of ``id``,
    ``video`` (absolute path), ``text``, ``speaker``, ``split`` and the synthesiser's word timings
    (``words``: dicts of text, start_s, end_s). Tests read it and never write into ``folder``."""

    folder: Path
    clips: tuple[dict, ...]

    def split(self, name: str) -> list[dict]:
        return [clip for clip in self.clips if clip["split"] == name]

    def first(self, count: int) -> list[dict]:
        """The first ``count`` utterances made (the speakers take turns), train first, then val, then test."""
        return [clip for clip in self.clips if int(clip["id"].rsplit("_", 1)[1]) < count]


def synth_options(num_utterances: int, speakers: int, seed: int, test_speakers: int = 2, val_speakers: int = 1):
    """The ``SynthOptions`` of the corpora made here. The photos as they are: these corpora check the
    pipeline and the embedded model, which was trained without identity variety
    (tests/synth/test_face_rig.py checks the variety itself)."""
    from avsr.synth.corpus import SynthOptions

    return SynthOptions(num_utterances=num_utterances, speakers=speakers, test_speakers=test_speakers,
                        val_speakers=val_speakers, seed=seed, face_variety=())


def make_synth_corpus(folder: Path, num_utterances: int, speakers: int, seed: int, test_speakers: int = 2,
                      val_speakers: int = 1) -> SynthCorpus:
    from avsr.synth.corpus import synthesize_corpus

    options = synth_options(num_utterances, speakers, seed, test_speakers, val_speakers)
    records = synthesize_corpus(folder, options, progress=False)
    clips = []
    for record in records["train"] + records["val"] + records["test"]:
        video = folder / record["video"]
        clips.append({"id": record["id"], "video": video, "text": record["text"], "speaker": record["speaker"],
                      "split": record["split"], "words": json.loads(video.with_suffix(".json").read_text())["words"]})
    return SynthCorpus(folder, tuple(clips))


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> SynthCorpus:
    """The shared test corpus: 24 utterances by six speakers (three train, one val, two test)."""
    return make_synth_corpus(tmp_path_factory.mktemp("synth_corpus"), CORPUS_UTTERANCES, CORPUS_SPEAKERS,
                             CORPUS_SEED)


@pytest.fixture(scope="session")
def conversation_corpus(synth_corpus) -> Path:
    """``avsr synth --faces-per-clip 2 --from`` the shared test corpus, its test split (s05 and s06 taking turns):
    the folder holding test.jsonl, test_alone.jsonl and the clips with their truth."""
    from avsr.synth.conversation import compose_conversations
    from avsr.synth.options import ConversationOptions

    out = synth_corpus.folder.parent / "conversation_corpus"
    compose_conversations(synth_corpus.folder, out, ConversationOptions(splits=("test",)), progress=False)
    return out


@pytest.fixture(scope="session")
def prepared_corpus(synth_corpus) -> Path:
    """``avsr prepare manifest`` of the shared test corpus's three splits (``--detect-every 2``): the folder
    holding train.jsonl, val.jsonl and test.jsonl and their features."""
    return prepare_corpus(synth_corpus, synth_corpus.folder.parent / "synth_corpus_prepared")


def prepare_corpus(corpus: SynthCorpus, out: Path, splits: tuple[str, ...] = ("train", "val", "test")) -> Path:
    """``avsr prepare manifest`` of ``splits`` of ``corpus`` into ``out`` (``--detect-every 2``)."""
    from avsr.data.prepare import prepare_manifest
    from avsr.io.lip_roi import LipRoiOptions

    for split in splits:
        prepare_manifest(corpus.folder / f"{split}.jsonl", out, LipRoiOptions(detect_every=2), progress=False)
    return out


def subset_manifest(target: Path, *manifests: Path, count: int | None = None, ids: list[str] | None = None,
                    per_speaker: bool = False) -> Path:
    """A manifest at ``target`` of some lines of ``manifests`` (read in turn), its paths made absolute so
    that it can live anywhere: every line, the first ``count`` (of each speaker, with ``per_speaker``), or
    those of ``ids`` in their order."""
    from avsr.data.manifest import read_jsonl, resolve, write_jsonl

    rows = [row | {key: str(resolve(manifest, row[key])) for key in ("video", "audio", "features") if row.get(key)}
            for manifest in manifests for row in read_jsonl(manifest)]
    if ids is not None:
        by_id = {row["id"]: row for row in rows}
        rows = [by_id[i] for i in ids]
    elif per_speaker:
        seen: dict[str, int] = {}
        kept = []
        for row in rows:
            seen[row["speaker"]] = seen.get(row["speaker"], 0) + 1
            if seen[row["speaker"]] <= count:
                kept.append(row)
        rows = kept
    elif count is not None:
        rows = rows[:count]
    target.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(target, rows)
    return target
