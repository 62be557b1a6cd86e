"""Issue 37, items 1 and 2: no command replaces a file it did not write, and no wrong result is reported as
success: every number an option takes is checked against its range up front, options that would exhaust
memory or time are bounded, repeats in a list of conditions are run once with a note, and options that cannot
apply (``--attention`` without cross-attention) are refused. (Items 3-7 are in tests/test_reliability.py.)

Each case checks the exit code, the one line naming the file or option, that no input changed and that no
temporary file was left. Refusals made before any work run the console script's own function in this process
(``avsr_main``); commands that do work run the installed ``avsr`` (marked slow).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import avsr_main, one_line

AVSR = str(Path(sys.executable).with_name("avsr"))
EMBEDDED = Path(__file__).resolve().parents[1] / "avsr" / "assets" / "synth-grid-tiny.pt"

# Options whose values are text (paths, names, lists parsed later); every other option that takes a value has
# choices or a Number type with its range. A new option must be one or the other: this list is the only
# place an option escapes the range table below.
TEXT_OPTIONS = {"inputs", "output_dir", "output", "landmarker_model", "faces", "voices", "text_file", "manifest",
                "root", "shard", "val_ids", "labels", "checkpoint", "note", "model", "compare", "lexicon", "noise",
                "formats", "lm", "device", "video", "audio", "source"}


def run(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([AVSR, *map(str, args)], capture_output=True, text=True, timeout=900, cwd=cwd)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial")]


def small_bundle(path: Path, **config) -> Path:
    """A random gated model of the smallest size, saved as a bundle at ``path``; ``config``: ModelConfig fields."""
    from avsr.models.av_model import AVSRModel, ModelConfig
    from avsr.models.bundle import save_bundle

    return save_bundle(path, AVSRModel(ModelConfig(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1,
                                                   video_channels=(8, 16), **config)))


def _commands() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """Every (sub)command's words and parser, walked from ``avsr``'s own parser."""
    from avsr.cli import build_parser

    found = []

    def walk(parser, words):
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subcommands:
            found.append((words, parser))
        for action in subcommands:
            for name, sub in action.choices.items():
                walk(sub, words + [name])

    walk(build_parser(), [])
    return found


def _valued(parser) -> list[argparse.Action]:
    """The actions of ``parser`` that take a value."""
    return [a for a in parser._actions if a.nargs != 0 and not isinstance(a, argparse._SubParsersAction)]


OPTIONS = [(words, action) for words, parser in _commands() for action in _valued(parser)]


def _minimal(words: list[str], parser) -> list[str]:
    """``words`` with a placeholder for each positional and required option: a command line that parses."""
    line = list(words)
    for action in _valued(parser):
        if not action.option_strings:
            line.append("x")
        elif action.required:
            line += [action.option_strings[0], "x"]
    return line


@pytest.mark.parametrize("words, action", OPTIONS, ids=[f"{' '.join(w)} {a.dest}" for w, a in OPTIONS])
def test_every_option_taking_a_value_is_text_a_choice_or_a_number_with_its_range(words, action):
    from avsr.cli.common import Number

    if action.choices is not None:
        return
    if action.dest in TEXT_OPTIONS and action.type is None:
        return
    assert isinstance(action.type, Number), (
        f"avsr {' '.join(words)} {action.option_strings or action.dest}: give it type=Number(kind, low, high) with "
        "its valid range (avsr.cli.common), or list it in TEXT_OPTIONS if it takes text")
    assert math.isfinite(action.type.maximum), f"{action.option_strings}: its range needs an upper bound"


def _bad_values(number) -> list[str]:
    bad = ["nan", "inf", "-inf", "1e300", "-1e300", "ten"]
    if number.kind is int:
        bad += ["1.5", str(int(number.minimum) - 1), str(int(number.maximum) + 1), "10" * 30]
    else:
        step = max(1.0, abs(number.maximum))
        bad += [repr(number.maximum + step), repr(number.minimum - step)]
        if number.above:
            bad += [repr(number.minimum), repr(number.maximum)]
    return bad


RANGED = [(words, parser, action, value) for words, parser in _commands() for action in _valued(parser)
          if action.type.__class__.__name__ == "Number" for value in _bad_values(action.type)]


@pytest.mark.parametrize("words, parser, action, value", RANGED,
                         ids=[f"{' '.join(w)} {a.option_strings[0]} {v}" for w, _, a, v in RANGED])
def test_numbers_out_of_range_are_refused_with_the_option_and_its_range(words, parser, action, value, tmp_path):
    option = action.option_strings[0]  # option=value: argparse takes "-inf" alone for an option of its own
    line = one_line(avsr_main(*_minimal(words, parser), f"{option}={value}", cwd=tmp_path), 2, option, "use ",
                    "whole number" if action.type.kind is int else "number")
    low = f"{int(action.type.minimum)}" if action.type.kind is int else f"{action.type.minimum:g}"
    assert low in line, line
    assert not list(tmp_path.iterdir()), "nothing is written"


@pytest.mark.parametrize("words, action", [(w, a) for w, a in OPTIONS if a.type.__class__.__name__ == "Number"],
                         ids=[f"{' '.join(w)} {a.dest}" for w, a in OPTIONS if a.type.__class__.__name__ == "Number"])
def test_each_range_takes_its_ends_and_its_default(words, action):
    number = action.type
    low, high = number.minimum, number.maximum
    if number.above:
        low, high = (low + high) / 2, (low + high) / 2
    for value in (low, high):
        assert number(str(int(value)) if number.kind is int else repr(value)) == value
    defaults = action.default if isinstance(action.default, list) else [action.default]
    for default in defaults:
        if default is not None and default not in number.words.values():
            assert number(str(default)) == default, (action.option_strings, default)


def test_values_that_would_exhaust_memory_or_time_are_refused(tmp_path):
    """``--beam-size 1000000000`` once set off the machine's out-of-memory killer after 56 s."""
    one_line(avsr_main("transcribe", "x.mp4", "--beam-size", "1000000000"), 2, "--beam-size", "1 to 100")
    one_line(avsr_main("synth", tmp_path / "c", "--frame-size", "100000"), 2, "--frame-size", "96 to 1080")
    one_line(avsr_main("demo", "-o", tmp_path / "d", "--clips", "100000000"), 2, "--clips", "1 to 100")
    one_line(avsr_main("transcribe", "x.mp4", "--workers", "100000"), 2, "--workers", "1 to 256")
    assert not list(tmp_path.iterdir())


def test_library_options_check_their_numbers_too():
    """Python callers get the command line's protection: the option dataclasses refuse the same values."""
    from avsr.errors import OptionError
    from avsr.evaluation.options import EvaluateOptions
    from avsr.inference.options import TranscribeOptions
    from avsr.synth.options import SynthOptions

    for bad in [dict(lm_weight=math.nan), dict(lm_weight=1e300), dict(beam_size=10**9), dict(batch_size=10**6)]:
        with pytest.raises(OptionError):
            TranscribeOptions(**bad)
    for bad in [dict(snrs=(math.inf,)), dict(snrs=(math.nan,)), dict(snrs=(4000.0,)), dict(seed=-1),
                dict(av_offsets_ms=(40_000,))]:
        with pytest.raises(OptionError):
            EvaluateOptions(**bad)
    for bad in [dict(val_speakers=-1), dict(test_speakers=-1, speakers=3), dict(seed=-1), dict(frame_size=100_000)]:
        with pytest.raises(OptionError):
            SynthOptions(**bad)


def test_synth_never_loses_its_test_split(tmp_path):
    """Speakers take turns with the held-out ones last: fewer utterances than speakers would leave the test
    (and validation) speakers none, and the corpus would come out without a test split."""
    one_line(avsr_main("synth", tmp_path / "c", "--num-utterances", "3", "--speakers", "6", "--test-speakers", "2"),
             2, "--num-utterances 3", "--speakers 6", "test speakers would get no utterance")
    one_line(avsr_main("synth", tmp_path / "c", "--val-speakers", "-1"), 2, "--val-speakers", "from 0")
    one_line(avsr_main("synth", tmp_path / "c", "--test-speakers", "-2"), 2, "--test-speakers", "from 0")
    assert not list(tmp_path.iterdir())
    from avsr.synth.options import SynthOptions

    assert SynthOptions(num_utterances=5, speakers=6, test_speakers=1, val_speakers=1).empty_splits == ("test",)
    assert SynthOptions(num_utterances=6, speakers=6, test_speakers=1, val_speakers=1).empty_splits == ()
    assert SynthOptions(num_utterances=4, speakers=6, test_speakers=2, val_speakers=0).empty_splits == ("test",)


def test_export_never_replaces_a_users_file_beside_its_output(tmp_path):
    """``avsr export good.pt d/talk.onnx`` once replaced d/talk.audio.onnx and d/talk.video.onnx without a
    word: each graph's path is checked, and so is a bundle's."""
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "talk.audio.onnx").write_bytes(b"the user's own audio graph")
    (folder / "talk.video.onnx").write_bytes(b"the user's own video graph")
    (folder / "b.pt").write_bytes(b"the user's own bundle")
    before = digest(folder)
    one_line(avsr_main("export", EMBEDDED, folder / "talk.onnx"), 2, "talk.audio.onnx", "exists", "--overwrite")
    one_line(avsr_main("export", EMBEDDED, folder / "b.pt"), 2, "b.pt", "exists", "--overwrite")
    assert digest(folder) == before and not leftovers(folder)
    done = avsr_main("export", EMBEDDED, folder / "b.pt", "--overwrite")
    assert done.returncode == 0, done.stderr
    from avsr.models.loader import load_model

    assert load_model(folder / "b.pt").network.modes == load_model(EMBEDDED).network.modes
    assert not leftovers(folder)


def test_render_never_replaces_an_existing_file(synth_corpus, tmp_path):
    video = Path(shutil.copy(synth_corpus.first(1)[0]["video"], tmp_path / "talk.mp4"))
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the user's own video")
    before = digest(tmp_path)
    one_line(avsr_main("render", video, "-o", out), 2, "out.mp4", "exists", "--overwrite")
    assert digest(tmp_path) == before and not leftovers(tmp_path)


def test_lip_roi_never_replaces_a_file_it_did_not_write(synth_corpus, tmp_path):
    """A user's own talk.npz (or talk.png, with --preview) where lip-roi's output would go fails that input with
    its reason; avsr's own crop file is its cache (rebuilt when stale)."""
    video = Path(shutil.copy(synth_corpus.first(1)[0]["video"], tmp_path / "talk.mp4"))
    out = tmp_path / "rois"
    out.mkdir()
    np.savez(out / "talk.npz", weights=np.arange(3))
    before = digest(tmp_path)
    line = one_line(avsr_main("lip-roi", video, "-o", out, "--quiet"), 1, "talk.npz", "not written by avsr lip-roi",
                    "--overwrite")
    assert line.startswith("failed: ")
    assert digest(tmp_path) == before and not leftovers(tmp_path)
    (out / "talk.npz").unlink()
    (out / "talk.png").write_bytes(b"the user's own picture")
    before = digest(tmp_path)
    one_line(avsr_main("lip-roi", video, "-o", out, "--quiet", "--preview"), 1, "talk.png", "--overwrite")
    assert digest(tmp_path) == before and not leftovers(tmp_path)


def test_attention_is_refused_for_a_model_without_cross_attention(synth_corpus, tmp_path):
    """``--attention`` with a gated model once wrote empty arrays and reported success; with --mode audio or
    video (no attention between the two) the same."""
    import torch

    torch.manual_seed(0)
    models = tmp_path / "models"
    models.mkdir()
    gated = small_bundle(models / "gated.pt", fusion="gate")
    video = Path(shutil.copy(synth_corpus.first(1)[0]["video"], tmp_path / "talk.mp4"))
    before = digest(tmp_path)
    one_line(avsr_main("transcribe", video, "-o", tmp_path / "out", "--attention", "--model", gated), 2,
             "--attention", "gated.pt", "no cross-attention")
    one_line(avsr_main("transcribe", video, "-o", tmp_path / "out", "--attention", "--mode", "audio"), 2,
             "--attention", "--mode audio")
    assert digest(tmp_path) == before and not (tmp_path / "out").exists()


ROOT = Path(__file__).resolve().parents[1]


def _manifest(path: Path, rows: list[tuple[str, Path, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "video": str(v), "text": t}) + "\n" for i, v, t in rows))
    return path


def test_prepare_refuses_text_it_cannot_train_on_with_file_and_line(synth_corpus, tmp_path):
    """Empty or blank text, and characters the tokenizer cannot encode once normalised, are refused before any
    work, each named by file:line."""
    video = synth_corpus.first(1)[0]["video"]
    manifest = _manifest(tmp_path / "m.jsonl", [("a", video, "Bin blue, at F two now!"), ("b", video, ""),
                                                ("c", video, "   "), ("d", video, "café au lait at 3")])
    before = digest(tmp_path)
    line = one_line(avsr_main("prepare", "manifest", manifest, tmp_path / "out", "--quiet"), 2, f"{manifest}:2",
                    f"{manifest}:3", f"{manifest}:4", "empty text", "'3é'", "tokenizer cannot encode")
    assert "numbers as words" in line
    assert digest(tmp_path) == before and not list((tmp_path / "out").rglob("*.npz")) and not leftovers(tmp_path)


@pytest.fixture(scope="module")
def prepared(synth_corpus, tmp_path_factory) -> Path:
    """Three clips prepared, the first with upper case and punctuation (normalised by prepare)."""
    folder = tmp_path_factory.mktemp("prepared")
    clips = synth_corpus.first(3)
    rows = [(f"u{i}", c["video"], c["text"].upper() + "!" if i == 0 else c["text"]) for i, c in enumerate(clips)]
    done = run("prepare", "manifest", _manifest(folder / "m.jsonl", rows), folder / "prep", "--quiet")
    assert done.returncode == 0, done.stderr
    return folder / "prep" / "m.jsonl"


def _tiny_config(path: Path, manifest: Path, run_dir: Path, **model) -> Path:
    path.write_text(json.dumps({
        "trainer": {"max_steps": 2, "default_root_dir": str(run_dir), "enable_progress_bar": False, "logger": False,
                    "enable_model_summary": False},
        "model": {"model": {"dim": 32, "num_heads": 2, "ffn_dim": 64, "audio_layers": 1, "video_layers": 1,
                            "video_channels": [8, 16]}} | ({"learning_rate": model["lr"]} if model else {}),
        "data": {"train_manifests": [str(manifest)], "val_manifests": [str(manifest)], "max_frames": 200}}))
    return path


def _train(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), "fit", "--config",
                           str(ROOT / "configs" / "synth_grid_tiny.yaml"), *map(str, args)],
                          capture_output=True, text=True, timeout=900)


def _last_line(result: subprocess.CompletedProcess) -> str:
    return [line for line in result.stderr.splitlines() if line.strip()][-1]


@pytest.mark.slow
def test_prepare_normalises_text_and_training_and_evaluation_refuse_bad_text_at_setup(prepared, synth_corpus,
                                                                                      tmp_path):
    lines = [json.loads(line) for line in prepared.read_text().splitlines()]
    assert lines[0]["text"] == synth_corpus.first(1)[0]["text"]  # upper case and "!" normalised away
    bad = tmp_path / "bad.jsonl"
    features = prepared.parent / "features"
    bad.write_text("".join(json.dumps(row | {"features": str(features / f"{row['id']}.npz"),
                                             "text": {1: "3 blue", 2: " "}.get(i, row["text"])}) + "\n"
                           for i, row in enumerate(lines)))
    before = digest(prepared.parent)
    trained = _train("--config", _tiny_config(tmp_path / "tiny.yaml", bad, tmp_path / "run"))
    assert trained.returncode == 1, trained.stderr[-2000:]
    last = _last_line(trained)
    assert last.startswith("train: error: ") and f"{bad}:2" in last and f"{bad}:3" in last, last
    assert "tokenizer cannot encode" in last and "empty text" in last and not list(tmp_path.rglob("*.ckpt"))
    line = one_line(run("evaluate", "--manifest", bad, "--modes", "audio"), 2, f"{bad}:2", f"{bad}:3")
    assert "avsr.text" not in line and "normalise(" not in line  # the fix in words, not a Python function
    assert digest(prepared.parent) == before and not leftovers(tmp_path)


@pytest.mark.slow
def test_resuming_with_another_configuration_names_the_keys_unless_forced(prepared, tmp_path):
    first = _train("--config", _tiny_config(tmp_path / "a.yaml", prepared, tmp_path / "run"))
    assert first.returncode == 0, first.stderr[-2000:]
    checkpoint = sorted((tmp_path / "run").rglob("*.ckpt"))[-1]
    before = digest(tmp_path / "run")
    changed = _tiny_config(tmp_path / "b.yaml", prepared, tmp_path / "run2", lr=0.01)
    refused = _train("--config", changed, "--ckpt_path", checkpoint, "--trainer.max_steps", "4")
    assert refused.returncode == 1, refused.stderr[-2000:]
    last = _last_line(refused)
    assert last.startswith("train: error: --ckpt_path ") and "model.learning_rate: 0.002 -> 0.01" in last, last
    assert "--force_config" in last and "Traceback" not in refused.stderr
    assert not (tmp_path / "run2").exists() and digest(tmp_path / "run") == before
    same = _train("--config", _tiny_config(tmp_path / "c.yaml", prepared, tmp_path / "run3"), "--ckpt_path",
                  checkpoint, "--trainer.max_steps", "4")
    assert same.returncode == 0, same.stderr[-2000:]  # the trainer's settings may change
    forced = _train("--config", changed, "--ckpt_path", checkpoint, "--trainer.max_steps", "4", "--force_config")
    assert forced.returncode == 0, forced.stderr[-2000:]


@pytest.mark.slow
def test_evaluate_runs_repeated_conditions_once_with_a_note(prepared, tmp_path):
    done = run("evaluate", "--manifest", prepared, "--modes", "audio", "audio", "--snr-db", "0", "0", "clean")
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert notes == ["note: --modes audio given more than once; each is run once",
                     "note: --snr-db 0 given more than once; each is run once"], done.stderr
    rows = [line.split()[:2] for line in done.stdout.splitlines() if line.split()[1:2] == ["audio"]]
    assert rows == [["clean", "audio"], ["0", "audio"]], done.stdout


def test_an_audio_only_model_fails_a_file_without_audio_and_transcribes_the_rest(tmp_path):
    """A mode that cannot apply fails that file with its reason (no words made up from silence); the batch
    goes on."""
    import torch

    from tests.conftest import CARPHONE, SPEECH

    torch.manual_seed(0)
    folder = tmp_path / "in"
    folder.mkdir()
    ears = small_bundle(tmp_path / "ears.pt", modalities="audio")
    silent, speech = shutil.copy(CARPHONE, folder / "silent.mp4"), shutil.copy(SPEECH, folder / "speech.wav")
    before = digest(folder)
    out = tmp_path / "out"
    line = one_line(avsr_main("transcribe", silent, speech, "--model", ears, "-o", out, "--quiet"), 1, "silent.mp4",
                    "has no audio track", "reads audio alone")
    assert line.startswith("failed: ")
    assert digest(folder) == before and not leftovers(tmp_path)
    assert not list(out.glob("silent.*")) and (out / "speech.json").exists()
    summary = {r["input"]: r for r in map(json.loads, (out / "transcribe_summary.jsonl").read_text().splitlines())}
    assert summary[str(silent)]["reason"] == "no_audio" and summary[str(speech)]["status"] == "done"


def test_prepare_never_replaces_a_file_it_did_not_write(synth_corpus, tmp_path):
    """OUT_DIR/<manifest name>, prepare_summary.jsonl and features/<id>.npz: a user's file of that name is
    refused before any work, unless --overwrite."""
    video = synth_corpus.first(1)[0]["video"]
    manifest = _manifest(tmp_path / "m.jsonl", [("a", video, "bin blue at f two now")])
    out = tmp_path / "out"
    (out / "features").mkdir(parents=True)
    for name, content in (("m.jsonl", "my own notes\n"), ("prepare_summary.jsonl", '{"mine": 1}\n'),
                          ("features/a.npz", None)):
        if content is None:
            np.savez(out / name, mine=np.arange(3))
        else:
            (out / name).write_text(content)
        before = digest(tmp_path)
        one_line(avsr_main("prepare", "manifest", manifest, out, "--quiet"), 2, str(out / name),
                 "not written by avsr prepare", "--overwrite")
        assert digest(tmp_path) == before and not leftovers(tmp_path)
        (out / name).unlink()


def test_synth_never_replaces_a_manifest_it_did_not_write(tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "train.jsonl").write_text('{"my": "own list"}\n')
    before = digest(tmp_path)
    one_line(avsr_main("synth", out, "--num-utterances", "6"), 2, "train.jsonl", "not written by avsr synth",
             "--overwrite")
    (out / "train.jsonl").unlink()
    (out / "speakers.json").write_text("my notes")
    before = digest(tmp_path)
    one_line(avsr_main("synth", out, "--num-utterances", "6"), 2, "speakers.json", "--overwrite")
    assert digest(tmp_path) == before and not leftovers(tmp_path)


def test_evaluate_never_replaces_a_table_it_did_not_write(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "results.md").write_text("# my own results\n")
    before = digest(tmp_path)
    one_line(avsr_main("evaluate", "--manifest", tmp_path / "m.jsonl", "-o", out), 2, "results.md",
             "not written by avsr evaluate", "--overwrite")
    (out / "results.csv").write_text("model,mode,noise,snr_db\n")  # a sweep's own table: its folder is avsr's
    assert "not written" not in avsr_main("evaluate", "--manifest", tmp_path / "m.jsonl", "-o", out).stderr
    assert digest(tmp_path) == before | {"sweep/results.csv": digest(tmp_path)["sweep/results.csv"]}


def test_a_recipe_never_replaces_or_deletes_a_manifest_it_did_not_write(synth_corpus, tmp_path):
    """``avsr prepare lrs3 ROOT OUT``: a user's test.jsonl (or stats.json) in OUT is refused before any work; a
    user's other .jsonl there is kept (it was deleted as a split of an earlier run)."""
    from avsr.text import Word
    from tests.data.test_recipes import lrs_label

    clip = synth_corpus.first(1)[0]
    root = tmp_path / "lrs3"
    (root / "test" / "spkT").mkdir(parents=True)
    shutil.copy(clip["video"], root / "test" / "spkT" / "00001.mp4")
    words = [Word(w["text"], w["start_s"], w["end_s"]) for w in clip["words"]]
    (root / "test" / "spkT" / "00001.txt").write_text(lrs_label(clip["text"], words))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.jsonl").write_text('{"my": "notes"}\n')
    for name in ("test.jsonl", "stats.json"):
        (out / name).write_text("mine\n")
        before = digest(tmp_path)
        one_line(avsr_main("prepare", "lrs3", root, out, "--splits", "test", "--quiet"), 2, str(out / name),
                 "not written by avsr prepare")
        assert digest(tmp_path) == before and not (out / "features").exists() and not leftovers(tmp_path)
        (out / name).unlink()
    done = run("prepare", "lrs3", root, out, "--splits", "test", "--quiet")
    assert done.returncode == 0, done.stderr
    assert (out / "notes.jsonl").read_text() == '{"my": "notes"}\n' and (out / "test.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("option, value, names", [
    ("--model.learning_rate", "1e300", ["--model.learning_rate 1e+300", "from 1e-08 to 1"]),
    ("--model.model.dim", "1000000", ["--model.model.dim 1000000", "from 8 to 4096"]),
    ("--data.max_frames", "100000000", ["--data.max_frames", "from 1 to 100000"]),
    ("--data.seed", "-1", ["--data.seed -1", "from 0 to 4294967295"]),
    ("--model.learning_rate", "nan", ['"model.learning_rate"', "nan"]),  # jsonargparse's own refusal
])
def test_training_refuses_absurd_numbers_before_anything_is_built(option, value, names, tmp_path):
    trained = _train("--trainer.default_root_dir", tmp_path / "run", f"{option}={value}")
    assert trained.returncode in (1, 2) and "Traceback" not in trained.stderr, trained.stderr[-2000:]
    last = " ".join([line for line in trained.stderr.splitlines() if line.strip()][-2:])
    for name in names:
        assert name in last, (name, last)
    assert not (tmp_path / "run").exists()


def test_transcribe_never_replaces_a_summary_it_did_not_write(tmp_path):
    """A user's own ``transcribe_summary.jsonl`` in ``-o`` is refused before any work (the summary is rewritten at
    the end of every run); ``--overwrite`` replaces it; a summary of an earlier run is kept and extended."""
    from tests.conftest import SPEECH

    out = tmp_path / "out"
    out.mkdir()
    (out / "transcribe_summary.jsonl").write_text("my notes\n")
    before = digest(tmp_path)
    one_line(avsr_main("transcribe", SPEECH, "-o", out, "--quiet"), 2, "transcribe_summary.jsonl",
             "not written by avsr transcribe", "--overwrite")
    assert digest(tmp_path) == before and not leftovers(tmp_path)
    assert avsr_main("transcribe", SPEECH, "-o", out, "--quiet", "--overwrite").returncode == 0
    lines = [json.loads(line) for line in (out / "transcribe_summary.jsonl").read_text().splitlines()]
    assert [r["status"] for r in lines] == ["done"] and (out / f"{Path(SPEECH).stem}.json").exists()
    assert avsr_main("transcribe", SPEECH, "-o", out, "--quiet").returncode == 0  # its own summary: no refusal
