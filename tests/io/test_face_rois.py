"""Every face of a clip, each with its own crops and an id that holds: four real faces in a moving video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avsr.io.face_ids import assign
from avsr.io.face_rois import FaceRois, extract_face_rois
from avsr.io.face_track import tracked_frames
from avsr.io.lip_roi import LipRoi, LipRoiOptions, extract_lip_roi
from avsr.io.roi_batch import run_lip_roi
from avsr.io.writer import write_video
from tests.conftest import CARPHONE, MULTI_FACE

FRAMES = 40
BORDER = 240  # grey canvas around the photo, so that the pan never shows the photo's own edge


def pan(frames: int = FRAMES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The camera's horizontal and vertical offsets (photo pixels) and zoom per frame: a pan to the
    right and back that takes the leftmost face half out of the frame around frame 20."""
    phase = 2 * np.pi * np.arange(frames) / frames
    across = 1 - np.abs(np.arange(frames) / (frames / 2) - 1)  # 0 .. 1 .. 0 at a steady speed
    return -20 + 162 * across, 10 * np.sin(phase), 1 + 0.08 * np.sin(phase / 2)


@pytest.fixture(scope="module")
def moving_faces(tmp_path_factory) -> tuple[np.ndarray, object]:
    """The four faces in the middle of tests/fixtures/multi_face.jpg (640x360, faces 85-116 pixels wide),
    filmed by a camera that pans and zooms: the frames as written to an .mp4, and the file."""
    photo = cv2.cvtColor(cv2.imread(str(MULTI_FACE)), cv2.COLOR_BGR2RGB)
    image = cv2.resize(photo[150:500, 250:850], (640, 360), interpolation=cv2.INTER_AREA)
    canvas = cv2.copyMakeBorder(image, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT, value=(127, 127, 127))
    frames = []
    for dx, dy, zoom in zip(*pan()):
        matrix = np.float32([[zoom, 0, -zoom * (BORDER + dx)], [0, zoom, -zoom * (BORDER + dy)]])
        frames.append(cv2.warpAffine(canvas, matrix, (640, 360), flags=cv2.INTER_AREA))
    path = write_video(tmp_path_factory.mktemp("faces") / "four_faces.mp4", np.stack(frames), fps=25)
    return np.stack(frames), path


@pytest.fixture(scope="module")
def four_faces(moving_faces) -> FaceRois:
    return extract_face_rois(moving_faces[1])


def test_four_faces_get_four_tracks_that_follow_the_pan(four_faces):
    rois = four_faces
    assert rois.faces == 4 and len(rois) == FRAMES
    assert rois.roi.shape == (4, FRAMES, 96, 96) and rois.boxes.shape == (4, FRAMES, 4)
    assert rois.face_found.shape == (4, FRAMES) and rois.mouth_landmarks.shape == (4, FRAMES, 40, 2)
    assert rois.face_found.all()  # the leftmost face's loss is short enough to be filled
    widths = rois.boxes[:, :, 2] - rois.boxes[:, :, 0]
    # Id 0 is the largest face in the first frame (the one the single-face track follows).
    assert np.argmax(widths[:, 0]) == 0
    # Each id's box centre is where the pan takes that face's first-frame centre, frame after frame:
    # no id jumps to another face.
    dx, dy, zoom = pan()
    centres = (rois.boxes[:, :, :2] + rois.boxes[:, :, 2:]) / 2  # (F, T, 2)
    in_photo = centres[:, 0] / zoom[0] + np.array([dx[0], dy[0]])  # (F, 2) photo pixels
    expected = zoom[None, :, None] * (in_photo[:, None] - np.stack([dx, dy], axis=1)[None])  # (F, T, 2)
    error = np.linalg.norm(centres - expected, axis=2) / widths[:, :1]
    seen = np.ones(FRAMES, bool)
    seen[12:28] = False  # the pan turns, and the leftmost face is half out of the frame and lost
    assert error[:, seen].max() < 0.1
    # Around the turn the boxes between landmarker calls (every 3rd frame) are interpolated, and the
    # leftmost face's across its loss: off by up to 0.39 face widths, and still nearest its own face.
    assert error.max() < 0.5
    nearest = np.linalg.norm(centres[:, None] - expected[None], axis=3).argmin(axis=1)  # (F, T)
    assert (nearest == np.arange(4)[:, None]).all()
    # The ids sit apart by more than half a face width all along, so none was taken for another's.
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=3)[~np.eye(4, dtype=bool)]
    assert gaps.min() > 0.5 * widths.max()
    # Every face's crop is its own mouth: each id's crops differ from every other id's.
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(rois.roi[a].astype(int) - rois.roi[b].astype(int)).mean() > 10


def test_a_face_that_leaves_the_frame_for_a_few_frames_keeps_its_id(moving_faces, four_faces):
    raw = [points for points, _ in tracked_frames(moving_faces[1], LipRoiOptions(), every_face=True)]
    calls = list(range(0, FRAMES, LipRoiOptions().detect_every))
    found = np.array([[len(raw[i]) > face and not np.isnan(raw[i][face, 0, 0]) for i in calls] for face in range(4)])
    assert len(raw[calls[-1]]) == 4  # no fifth id
    lost = ~found.all(axis=1)
    assert lost.sum() == 1, found  # the leftmost face, half out of the frame
    face = int(np.flatnonzero(lost)[0])
    missed = np.flatnonzero(~found[face])
    assert len(missed) >= 2 and found[face, missed[-1] + 1:].all()  # lost for several calls, then back
    assert four_faces.face_found[face].all()


def test_lip_roi_writes_a_track_per_face_and_one_face_as_before(moving_faces, tmp_path):
    results = run_lip_roi([moving_faces[1], CARPHONE], tmp_path, progress=False)
    assert [r.status.value for r in results] == ["done", "done"], results
    with np.load(tmp_path / "four_faces.npz") as data:
        assert data["roi"].shape == (4, FRAMES, 96, 96) and data["face_found"].shape == (4, FRAMES)
        assert data["boxes"].shape == (4, FRAMES, 4) and data["timestamps_s"].shape == (FRAMES,)
    with np.load(tmp_path / "carphone_pristine.npz") as data:
        frames = len(data["timestamps_s"])
        assert data["roi"].shape == (frames, 96, 96) and data["face_found"].shape == (frames,)
        assert data["mouth_landmarks"].shape == (frames, 40, 2) and data["transforms"].shape == (frames, 2, 3)
    # The single-face file is the single-face pipeline's crops, byte for byte, and reads as before.
    single = LipRoi.load(tmp_path / "carphone_pristine.npz")
    reference = extract_lip_roi(CARPHONE)
    np.testing.assert_array_equal(single.roi, reference.roi)
    np.testing.assert_array_equal(single.face_found, reference.face_found)
    np.testing.assert_array_equal(single.boxes, reference.boxes)
    assert FaceRois.load(tmp_path / "carphone_pristine.npz").faces == 1
    # A file of several faces reads back whole, and as one LipRoi: the face found in most frames.
    again = FaceRois.load(tmp_path / "four_faces.npz")
    assert again.faces == 4 and LipRoi.load(tmp_path / "four_faces.npz").roi.shape == (FRAMES, 96, 96)


def test_a_single_face_file_written_before_boxes_still_loads(tmp_path):
    old = extract_lip_roi(np.repeat(cv2.cvtColor(cv2.imread(str(MULTI_FACE)), cv2.COLOR_BGR2RGB)[None, 150:500, 250:850],
                                    3, axis=0))
    old.boxes = None  # as files of before 2026-12-07
    old.save(tmp_path / "old.npz")
    with np.load(tmp_path / "old.npz") as data:
        assert "boxes" not in data.files
    assert LipRoi.load(tmp_path / "old.npz").boxes is None
    loaded = FaceRois.load(tmp_path / "old.npz")
    assert loaded.faces == 1 and loaded.boxes.shape == (1, 3, 4) and np.isnan(loaded.boxes).all()


def test_assignment_takes_the_least_total_cost():
    cost = np.array([[1.0, 2.0], [0.5, np.inf]])
    assert sorted(assign(cost)) == [(0, 1), (1, 0)]  # 2.5, against 1.0 + nothing for row 1
    assert assign(np.full((2, 2), np.inf)) == []
