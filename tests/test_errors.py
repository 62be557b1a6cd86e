"""The one error model (avsr/errors.py): every error a user can fix is an ``AvsrError`` told in one line
with its exit code; anything else is a bug, shown with its traceback; library functions refuse bad
outputs themselves, so Python callers get the command's protection."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil

import pytest

import avsr
from avsr.errors import AvsrError, OptionError
from tests.conftest import CARPHONE, SPEECH, avsr_main, one_line

# Exceptions that are not errors of the user's: control flow inside the package.
NOT_USER_ERRORS = {"avsr.parallel.Cancelled"}


def package_exceptions() -> dict[str, type]:
    """Every exception class (warnings aside) defined in a module of the package, by dotted name."""
    found = {}
    for module in pkgutil.walk_packages(avsr.__path__, "avsr."):
        if module.name.startswith("avsr.cli"):
            continue  # the command line defines none; importing it is cheap but says nothing more
        loaded = importlib.import_module(module.name)
        for name, value in vars(loaded).items():
            if (inspect.isclass(value) and issubclass(value, Exception) and not issubclass(value, Warning)
                    and value.__module__ == module.name):
                found[f"{module.name}.{name}"] = value
    return found


def test_every_exception_of_the_package_is_an_avsr_error():
    exceptions = package_exceptions()
    assert "avsr.io.media.MediaError" in exceptions and "avsr.models.loader.BundleError" in exceptions
    strays = sorted(name for name, kind in exceptions.items()
                    if name not in NOT_USER_ERRORS and not issubclass(kind, AvsrError))
    assert not strays, f"make these subclass avsr.errors.AvsrError: {strays}"


def test_an_option_error_is_one_line_with_exit_code_2_and_keeps_valueerror():
    assert issubclass(OptionError, ValueError) and OptionError("x").exit_code == 2
    result = avsr_main("synth", "out", "--num-utterances", "4", "--speakers", "2", "--test-speakers", "1",
                       "--val-speakers", "1")
    one_line(result, 2, "avsr synth: error:", "test", "val")


def test_a_bad_file_for_a_one_file_command_fails_it_with_exit_code_1(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    result = avsr_main("render", broken, "-o", tmp_path / "out.mp4")
    one_line(result, 1, "avsr render: error:", str(broken))
    assert not (tmp_path / "out.mp4").exists()


def test_a_bug_is_a_traceback_with_a_request_to_report_it(monkeypatch, tmp_path):
    import avsr.synth.corpus

    def broken(*args, **kwargs):  # stands for a bug deep in a library function: a plain ValueError
        raise ValueError("an internal invariant failed")

    monkeypatch.setattr(avsr.synth.corpus, "synthesize_corpus", broken)
    result = avsr_main("synth", tmp_path / "out", "--num-utterances", "2", "--speakers", "1", "--test-speakers", "0",
                       "--val-speakers", "0")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "an internal invariant failed" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("avsr synth: internal error:")
    assert "please report" in result.stderr


def test_the_error_line_names_the_deepest_subcommand(tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = avsr_main("prepare", "manifest", missing, tmp_path / "out")
    one_line(result, 2, "avsr prepare manifest: error:", str(missing))


def test_run_lip_roi_refuses_an_output_over_an_input_by_itself(tmp_path):
    from avsr.io.inputs import OutputError
    from avsr.io.roi_batch import run_lip_roi

    clip = tmp_path / "clip.png"  # a video under the name of the preview run_lip_roi would write for it
    shutil.copy(CARPHONE, clip)
    before = clip.read_bytes()
    with pytest.raises(OutputError, match="clip.png"):
        run_lip_roi([clip], tmp_path, preview=True, progress=False)
    assert clip.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.png"]


def test_transcribe_batch_refuses_an_output_over_an_input_by_itself(tmp_path):
    from avsr.inference.batch import transcribe_batch
    from avsr.io.inputs import OutputError
    from avsr.models.bundle import load_model

    clip = tmp_path / "speech.txt"  # audio under the name of the transcript transcribe_batch would write
    shutil.copy(SPEECH, clip)
    before = clip.read_bytes()
    with pytest.raises(OutputError, match="speech.txt"):
        transcribe_batch([clip], load_model("synth-grid-tiny"), tmp_path, formats=("txt",), progress=False)
    assert clip.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech.txt"]
