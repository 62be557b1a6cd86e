"""``run_lip_roi`` over files that are not video: each fails with its reason, the batch goes on."""

from __future__ import annotations

from avsr.io.results import Reason, Status
from avsr.io.roi_batch import _crashed, run_lip_roi


def test_bad_files_fail_with_their_reason(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("a text file renamed .mp4\n")
    paths = [tmp_path / "empty.mp4", tmp_path / "notes.mp4", tmp_path / "gone.mp4"]
    results = run_lip_roi(paths, tmp_path / "rois", workers=1, progress=False)
    assert [(r.input, r.status, r.reason) for r in results] == [
        (str(paths[0]), Status.FAILED, Reason.EMPTY), (str(paths[1]), Status.FAILED, Reason.NOT_MEDIA),
        (str(paths[2]), Status.FAILED, Reason.MISSING)]
    assert results[0].error == f"{paths[0]}: file is empty (0 bytes); re-export or re-download it"
    assert results[1].error == f"{paths[1]}: is a text file, not audio or video; pass a media file"
    assert all(r.output is None and r.seconds >= 0 for r in results)
    assert not list((tmp_path / "rois").iterdir())


def test_a_crashed_worker_is_reported_as_such(tmp_path):
    result = _crashed((tmp_path / "a.mp4", tmp_path / "a.npz", None, False, False))
    assert result.status is Status.FAILED and result.reason is Reason.CRASHED
    assert result.error.startswith(f"{tmp_path / 'a.mp4'}: the worker process crashed")
