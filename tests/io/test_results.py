"""Batch results: the reason set, the one failure formatter, and the JSON record round trip."""

from __future__ import annotations

import json
import pickle

import pytest

from avsr.io.media import MediaError
from avsr.io.results import MEDIA_REASONS, FileResult, Reason, Status, failure_message, reason_of


def test_media_errors_carry_a_reason_that_is_still_its_string():
    error = MediaError("clip.mp4", "no_video", "has no video stream; pass a file with video")
    assert error.reason is Reason.NO_VIDEO and error.reason == "no_video" and f"{error.reason}" == "no_video"
    assert [r.value for r in MEDIA_REASONS] == ["missing", "empty", "too_short", "not_media", "corrupt", "truncated",
                                                "no_streams", "no_video", "no_audio", "no_face"]
    with pytest.raises(AssertionError):
        MediaError("clip.mp4", Reason.CRASHED, "a batch reason is not a media reason")
    with pytest.raises(ValueError):
        MediaError("clip.mp4", "unheard_of", "not a reason at all")


@pytest.mark.parametrize("error, reason", [
    (MediaError("a.mp4", "corrupt", "FFmpeg cannot open it"), Reason.CORRUPT),
    (OSError(28, "No space left on device"), Reason.IO_ERROR),
    (ValueError("the model gave NaN scores"), Reason.INVALID),
    (KeyError("roi"), Reason.UNEXPECTED),
])
def test_each_exception_kind_has_its_reason(error, reason):
    assert reason_of(error) is reason


def test_the_failure_line_names_the_file_once_and_asks_for_a_report_of_bugs():
    error = MediaError("/in/a.mp4", "empty", "file is empty (0 bytes); re-export or re-download it")
    assert failure_message("/in/a.mp4", error) == "/in/a.mp4: file is empty (0 bytes); re-export or re-download it"
    assert failure_message("/in/a.mp4", "piece p1 lies outside\nthe video") == "/in/a.mp4: piece p1 lies outside"
    bug = failure_message("/in/a.mp4", KeyError("roi"))
    assert bug == "/in/a.mp4: KeyError: 'roi'; please report this with the file"


def test_records_round_trip_through_json_with_renamed_keys():
    keys = {"input": "video", "frames": "num_frames"}
    done = FileResult("/in/a.mp4", Status.DONE, id="s1/a", frames=75, face_found_rate=0.5, seconds=1.25,
                      extra={"split": "test"})
    line = json.loads(json.dumps(done.to_json(keys)))
    assert line == {"id": "s1/a", "video": "/in/a.mp4", "status": "done", "num_frames": 75, "face_found_rate": 0.5,
                    "seconds": 1.25, "split": "test"}
    assert FileResult.from_json(line, keys) == done
    failed = FileResult.failed("/in/b.mp4", MediaError("/in/b.mp4", "not_media", "is a text file"), id="s1/b")
    line = json.loads(json.dumps(failed.to_json(keys)))
    assert line == {"id": "s1/b", "video": "/in/b.mp4", "status": "failed", "reason": "not_media",
                    "error": "/in/b.mp4: is a text file"}
    assert FileResult.from_json(line, keys) == failed
    assert pickle.loads(pickle.dumps(failed)) == failed  # results come back from worker processes


def test_a_summary_line_written_before_reasons_still_reads_back():
    old = {"id": "u", "video": "/in/c.mp4", "status": "failed", "error": "/in/c.mp4: file is empty"}
    result = FileResult.from_json(old, {"input": "video"})
    assert result.status is Status.FAILED and result.reason is None and result.error == old["error"]
    assert result.to_json({"input": "video"}) == old


def test_a_crashed_worker_gets_its_reason_and_one_line():
    result = FileResult.crashed("/in/d.mp4")
    assert result.reason is Reason.CRASHED and result.error.startswith("/in/d.mp4: the worker process crashed")
    assert "\n" not in result.error
