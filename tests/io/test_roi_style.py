"""The ``auto-avsr`` ROI style: auto_avsr's own mouth crops of a real clip, the spec that names the
style, and ``avsr lip-roi --roi-style``.

The golden is the reference's MediaPipe preparation of carphone_pristine.mp4
(tests/fixtures/auto_avsr/video_crop_geometry.md); the style was not tuned on this clip.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avsr.errors import OptionError
from avsr.io.lip_roi import (LipRoi, LipRoiOptions, crop_centres, crop_corners, extract_lip_roi, iter_lip_roi,
                             steadiness_percent, stream_margin)
from avsr.io.mean_face import MEAN_FACE_POINTS, SMOOTH_RADIUS, keypoint_transforms
from avsr.io.frames import frame_to_gray, frame_to_rgb
from avsr.io.media import iter_video_frames
from avsr.io.roi_batch import cache_key
from avsr.preprocessing import Preprocessing, PreprocessingError
from bench.roi_geometry import GOLDEN, best_fit, reference_corners
from tests.conftest import CARPHONE, avsr_main

AUTO_AVSR = LipRoiOptions(roi_style="auto-avsr")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return reference_corners(GOLDEN)


@pytest.fixture(scope="module")
def file_roi() -> LipRoi:
    return extract_lip_roi(CARPHONE, AUTO_AVSR)


def test_the_reference_keypoints_give_the_reference_crops(reference):
    # Fed the reference's own keypoints, the style's geometry is the reference's, frame for frame.
    keypoints = np.load(GOLDEN.parent / "video_landmarks_mediapipe.npy")  # (120, 4, 2) whole pixels
    transforms = keypoint_transforms(keypoints, np.ones(len(keypoints), bool), 96)
    np.testing.assert_allclose(crop_corners(transforms, 96), reference, atol=1e-9)


@pytest.mark.parametrize("stride", [1, 3])
def test_auto_avsr_crops_sit_within_2_px_and_3_percent_of_the_references(carphone_frames, reference, stride):
    # The clip's frames at their own rate, as the reference reads them: frame i against frame i.
    roi = extract_lip_roi(carphone_frames, LipRoiOptions(roi_style="auto-avsr", detect_every=stride))
    assert roi.face_found.all() and roi.roi.shape == (120, 96, 96)
    shift_px, scale = best_fit(crop_corners(roi.transforms, 96), reference)
    assert np.median(shift_px) <= 2.0
    assert np.median(np.abs(scale - 1)) <= 0.03


def test_the_avsr_style_crops_wider_than_the_reference(carphone_frames, reference):
    # The measure tells the styles apart: this package's own crops are ~6 % larger.
    roi = extract_lip_roi(carphone_frames)
    _, scale = best_fit(crop_corners(roi.transforms, 96), reference)
    assert np.median(scale) > 1.04


def test_auto_avsr_crops_are_grey_from_rgb(file_roi):
    # From a file: 0.299 R + 0.587 G + 0.114 B of the decoded RGB (as the reference), not the luma plane,
    # which is about a grey level brighter on this clip.
    roi = file_roi
    frames = list(iter_video_frames(CARPHONE))  # 25 fps
    assert roi.face_found.all() and len(roi) == len(frames)
    for index in (0, len(frames) // 2, len(frames) - 1):
        crop = roi.roi[index].astype(int)
        # The stored transforms are float32, the crops were cut with float64: a grey level off here and there.
        cut = [cv2.warpAffine(gray, roi.transforms[index], (96, 96), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT).astype(int)
               for gray in (cv2.cvtColor(frame_to_rgb(frames[index]), cv2.COLOR_RGB2GRAY), frame_to_gray(frames[index]))]
        assert np.abs(crop - cut[0]).max() <= 1 and np.abs(crop - cut[0]).mean() < 0.01
        assert (cut[1] - crop).mean() > 0.5


def test_the_eye_distance_of_auto_avsr_crops_is_the_faces(file_roi, reference):
    # crop_centres (and steadiness_percent) read the face's scale from the crops' transforms, per style:
    # here the mean face's eye distance at the crop's scale, as the reference's crops have it (about 21 px).
    sides = np.linalg.norm(reference[:, 1] - reference[:, 0], axis=1)  # source pixels per 96 crop pixels
    eyes_px = np.linalg.norm(MEAN_FACE_POINTS[1] - MEAN_FACE_POINTS[0]) * sides / 96
    _, interocular = crop_centres(file_roi, AUTO_AVSR)
    assert abs(np.median(interocular) / np.median(eyes_px) - 1) < 0.03
    assert steadiness_percent(file_roi, AUTO_AVSR) < 5.0


def test_outside_the_frame_is_black(carphone_frames):
    # The frame cut off just below the mouth: the crop's last row lies below the frame's.
    frames = np.ascontiguousarray(carphone_frames[:40, :80])
    roi = extract_lip_roi(frames, AUTO_AVSR)
    assert roi.face_found.all()
    assert (crop_corners(roi.transforms, 96)[:, 2:, 1] > 81).all()
    assert (roi.roi[:, -1] == 0).all()
    assert (extract_lip_roi(frames).roi[:, -1] > 0).any()  # the avsr style repeats the edge


def test_crops_cut_in_pieces_are_the_crops_of_the_whole_clip(carphone_frames):
    frames = np.concatenate([carphone_frames[:60], carphone_frames[:30]])
    frames[20:40] = 0  # longer than max_gap_frames: no face
    frames[60:64] = 0  # filled
    assert stream_margin(AUTO_AVSR) == AUTO_AVSR.max_gap_frames + 1 + SMOOTH_RADIUS
    whole = next(iter_lip_roi(frames, AUTO_AVSR, piece_frames=len(frames)))
    for piece_frames in (7, 40):
        pieces = list(iter_lip_roi(frames, AUTO_AVSR, piece_frames=piece_frames))
        for field in ("roi", "face_found", "transforms", "mouth_landmarks"):
            np.testing.assert_array_equal(np.concatenate([getattr(p, field) for p in pieces]), getattr(whole, field),
                                          err_msg=f"{field}, pieces of {piece_frames}")
    assert not whole.face_found[20:40].any() and whole.face_found[60:64].all()


def test_a_style_that_does_not_exist_is_refused():
    with pytest.raises(OptionError, match="roi_style='mean'; use one of avsr, auto-avsr"):
        LipRoiOptions(roi_style="mean")
    with pytest.raises(PreprocessingError, match="roi_style='mean'.*upgrade avsr"):
        Preprocessing(roi_style="mean")


def test_the_spec_names_the_style_and_older_specs_read_as_avsr():
    spec = Preprocessing(roi_style="auto-avsr")
    assert Preprocessing.from_dict(spec.to_dict()) == spec
    older = {k: v for k, v in Preprocessing().to_dict().items() if k != "roi_style"}
    assert Preprocessing.from_dict(older).roi_style == "avsr" == Preprocessing.from_dict(None).roi_style


def test_lip_roi_command_writes_the_style_asked_for(tmp_path, file_roi):
    assert cache_key(CARPHONE, AUTO_AVSR) != cache_key(CARPHONE, LipRoiOptions())
    result = avsr_main("lip-roi", str(CARPHONE), "-o", str(tmp_path), "--roi-style", "auto-avsr", "--quiet")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "carphone_pristine.npz") as data:
        assert str(data["meta_roi_style"]) == "auto-avsr"
        np.testing.assert_array_equal(data["roi"], file_roi.roi)
    result = avsr_main("lip-roi", str(CARPHONE), "-o", str(tmp_path), "--quiet")  # another style: cut again
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "carphone_pristine.npz") as data:
        assert str(data["meta_roi_style"]) == "avsr"
    refused = avsr_main("lip-roi", str(CARPHONE), "-o", str(tmp_path), "--roi-style", "mean")
    assert refused.returncode == 2 and "invalid choice: 'mean'" in refused.stderr
