"""The face rig on the bundled real photos: every mouth opens, and each kind of identity variety
changes what it says, measured on the rendered frames (with MediaPipe where it can see it)."""

from __future__ import annotations

from dataclasses import asdict, fields

import numpy as np
import pytest

from avsr.io.face_mesh import LIPS_SLICE, OVAL_SLICE, FaceMeshTracker
from avsr.synth import VARIETY_KINDS
from avsr.synth.corpus import SynthOptions, load_faces, make_speakers
from avsr.synth.face_look import FaceLook
from avsr.synth.face_rig import MouthAnimator, build_rig


@pytest.fixture(scope="module")
def faces():
    return {face.source: face for face in load_faces(None)}


def landmarks(frame: np.ndarray) -> np.ndarray:
    """MediaPipe's kept points of the one face in a rendered frame."""
    with FaceMeshTracker(max_faces=1) as tracker:
        found = tracker.detect_faces(np.ascontiguousarray(frame), 0)
    assert len(found) == 1
    return found[0]


def inner_gap(points: np.ndarray) -> float:
    """Lower inner lip below the upper inner lip at the mouth's centre, in mouth widths (MediaPipe's view)."""
    lips = points[LIPS_SLICE]
    return float((lips[25, 1] - lips[35, 1]) / np.linalg.norm(lips[0] - lips[10]))


def test_every_bundled_face_opens_its_mouth_even_when_the_photo_shows_it_closed(faces):
    # biden.jpg and multi_face.jpg #2 show closed lips: their inner contours coincide, and the rig
    # used to move both lips half-way there, so the opening between them was never darkened (on
    # biden.jpg the spot between the lips got brighter: 1.27x; the test speaker s25's weak crops).
    for source, face in faces.items():
        animator = MouthAnimator(build_rig(face.photo, face.points, 224, source))
        closed, opened = animator.mouth_frame(0.0, 0.0), animator.mouth_frame(1.0, 0.0)
        points = landmarks(opened)
        assert inner_gap(points) - inner_gap(landmarks(closed)) > 0.15, source
        lips = points[LIPS_SLICE]
        x, y = np.round((lips[25] + lips[35]) / 2).astype(int)  # between the inner lips' centres
        spot = (slice(y - 1, y + 2), slice(x - 2, x + 3))
        assert opened[spot].astype(np.float32).mean() < 0.5 * closed[spot].astype(np.float32).mean(), source


def test_vary_draws_only_the_kinds_it_is_given():
    plain = FaceLook()
    changed = {kind: {f.name for f in fields(FaceLook)
                      if getattr(plain.vary(np.random.default_rng(5), (kind,)), f.name) != getattr(plain, f.name)}
               for kind in VARIETY_KINDS}
    assert changed["skin"] == {"skin", "light"}
    assert changed["aspect"] == {"aspect"}
    assert changed["mouth_width"] == {"mouth_width"}
    assert changed["lips"] == {"lip_thickness", "lip_colour"}
    assert changed["teeth"] == {"mouth_inside", "teeth", "teeth_show"}
    assert changed["hair"] <= {"hair", "hair_colour", "hair_density", "hair_seed"}
    # One kind's draw does not depend on which others are on.
    alone = plain.vary(np.random.default_rng(5), ("mouth_width",))
    together = plain.vary(np.random.default_rng(5), VARIETY_KINDS)
    assert alone.mouth_width == together.mouth_width
    with pytest.raises(ValueError, match="unknown face variety"):
        plain.vary(np.random.default_rng(5), ("freckles",))


def test_each_kind_of_variety_shows_in_the_rendered_face(faces):
    face = faces["obama.jpg#0"]
    plain = build_rig(face.photo, face.points, 224, face.source)
    plain_points = landmarks(plain.image)

    def rig(**look):
        return build_rig(face.photo, face.points, 224, face.source, FaceLook(**look))

    def mouth_width(points: np.ndarray) -> float:
        lips = points[LIPS_SLICE]
        return float(np.linalg.norm(lips[0] - lips[10]))

    # Mouth width, as MediaPipe measures it on the rendered face against the photo's.
    wide, narrow = rig(mouth_width=1.18), rig(mouth_width=0.85)
    assert mouth_width(landmarks(wide.image)) > 1.1 * mouth_width(plain_points)
    assert mouth_width(landmarks(narrow.image)) < 0.92 * mouth_width(plain_points)
    assert wide.mouth_width > 1.12 * plain.mouth_width  # and the rig's own lip points moved with it

    # Lip thickness: the outer lips' height against the mouth's width.
    def lip_height(points: np.ndarray) -> float:
        lips = points[LIPS_SLICE]
        return float(np.ptp(lips[:20, 1]) / np.linalg.norm(lips[0] - lips[10]))
    assert lip_height(landmarks(rig(lip_thickness=1.3).image)) > 1.12 * lip_height(plain_points)

    # Aspect: the face oval's width over height.
    def aspect(points: np.ndarray) -> float:
        oval = points[OVAL_SLICE]
        return float(np.ptp(oval[:, 0]) / np.ptp(oval[:, 1]))
    assert aspect(landmarks(rig(aspect=1.15).image)) > 1.08 * aspect(plain_points)

    # Skin tone: the cheeks darken; the background far from the face barely changes.
    dark = rig(skin=0.6).image.astype(np.float32)
    cheek = (slice(100, 120), slice(60, 80))
    assert dark[cheek].mean() < 0.75 * plain.image[cheek].astype(np.float32).mean()
    assert abs(dark[:10, :10].mean() - plain.image[:10, :10].astype(np.float32).mean()) < 3

    # Lip colour: the lips' mean colour moves towards the asked one.
    lips_mask = np.zeros(plain.image.shape[:2], bool)
    x0, y0 = np.floor(plain.lips.min(axis=0)).astype(int)
    x1, y1 = np.ceil(plain.lips.max(axis=0)).astype(int)
    lips_mask[y0:y1, x0:x1] = True
    blue = rig(lip_colour=(90, 90, 200)).image[lips_mask].astype(np.float32).mean(axis=0)
    assert blue[2] > plain.image[lips_mask].astype(np.float32).mean(axis=0)[2] + 20

    # Facial hair: a moustache darkens the band above the upper lip; MediaPipe still finds the face.
    hairy = rig(hair="moustache", hair_colour=(30, 22, 18), hair_density=0.8, hair_seed=1)
    above = (slice(int(plain.lips[:, 1].min()) - 8, int(plain.lips[:, 1].min()) - 2), slice(x0 + 5, x1 - 5))
    assert hairy.image[above].astype(np.float32).mean() < plain.image[above].astype(np.float32).mean() - 20
    landmarks(hairy.image)

    # The inside of the mouth and the teeth: an open mouth shows the asked colours.
    green = MouthAnimator(rig(mouth_inside=(10, 70, 10), teeth_show=0.0)).mouth_frame(1.0, 0.0)
    opened = MouthAnimator(plain).mouth_frame(1.0, 0.0)
    centre = tuple(np.round(plain.mouth_centre).astype(int)[::-1])
    spot = (slice(centre[0] + 2, centre[0] + 6), slice(centre[1] - 3, centre[1] + 3))
    assert green[spot].astype(np.float32)[..., 1].mean() > opened[spot].astype(np.float32)[..., 1].mean() + 20


def test_training_speakers_get_variety_and_held_out_speakers_their_photos(faces):
    options = SynthOptions(num_utterances=30, speakers=10, test_speakers=2, val_speakers=1, seed=3)
    speakers = make_speakers(options, list(faces.values()))
    plain = [s for s in speakers if s.split != "train"]
    assert plain and all(asdict(s.look) == asdict(FaceLook()) for s in plain)
    trained = [s.look for s in speakers if s.split == "train"]
    assert len({look.mouth_width for look in trained}) == len(trained)
    # Without variety only the reuse looks remain, and nothing else about the speakers changes.
    bare = make_speakers(SynthOptions(**{**asdict(options), "face_variety": ()}), list(faces.values()))
    assert all(look.mouth_width == 1.0 and look.hair == "none" for look in (s.look for s in bare))
    assert [(s.face, s.voice, s.split, s.seed) for s in bare] == [(s.face, s.voice, s.split, s.seed) for s in speakers]
    with pytest.raises(ValueError, match="unknown face variety"):
        SynthOptions(face_variety=("freckles",))
