"""Expanding command-line inputs into media files."""

from __future__ import annotations

import shutil

from avsr.io.inputs import expand_inputs
from tests.conftest import CARPHONE, SPEECH


def test_files_folders_globs_and_lists(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    shutil.copy(CARPHONE, tmp_path / "a" / "deep" / "one.mp4")
    shutil.copy(SPEECH, tmp_path / "a" / "two.wav")
    (tmp_path / "a" / "notes.txt").write_text("not media")
    shutil.copy(CARPHONE, tmp_path / "three.MOV")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my clips\n{tmp_path / 'three.MOV'}\n\n{tmp_path / 'missing.mp4'}\n")

    found = expand_inputs([str(tmp_path / "a"), str(tmp_path / "*.MOV"), f"@{listing}", str(tmp_path / "a" / "two.wav")])
    assert found == [
        tmp_path / "a" / "deep" / "one.mp4",  # folders: recursive, media extensions only
        tmp_path / "a" / "two.wav",
        tmp_path / "three.MOV",  # from the glob; the list's copy is a duplicate
        tmp_path / "missing.mp4",  # kept, so that it is reported as missing
    ]
