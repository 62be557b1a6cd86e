"""Lead-ins and trails of room tone in training (AugmentOptions.lead_in_prob), on real speech."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avsr.data.augment import Augmenter, AugmentOptions
from avsr.data.dataset import AVDataset
from avsr.errors import OptionError
from tests.conftest import SPEECH, read_wav

PLAIN = dict(noise_prob=0.0, drop_audio_prob=0.0, drop_video_prob=0.0, blank_span_prob=0.0, flip_prob=0.0,
             time_mask_prob=0.0, random_crop=False)


def speech_clip() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    speech, _ = read_wav(SPEECH)
    frames = len(speech) // 640
    video = np.random.default_rng(0).integers(0, 255, (frames, 96, 96), dtype=np.uint8)
    return video, np.ones(frames, bool), speech[: frames * 640].astype(np.float32)


def dbfs(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(audio.astype(np.float64) ** 2))


@pytest.mark.parametrize("level", [-70.0, -60.0, -45.0])
def test_lead_in_and_trail_hold_the_edge_crops_over_room_tone_at_the_level(level):
    video, face, audio = speech_clip()
    frames, crops = len(video), video[:, 4:92, 4:92]
    face[0], face[-1] = False, True  # the first frame's face_found is held too
    options = AugmentOptions(**PLAIN, lead_in_prob=1.0, max_lead_in_frames=75, max_trail_frames=50,
                             room_tone_dbfs_range=(level, level))
    seen = set()
    for seed in range(6):
        out_video, out_face, out_audio, snr, offset = Augmenter(options)(video, face, audio, np.random.default_rng(seed))
        # where the clip now sits: its own sound, unchanged, at a whole frame
        starts = [s for s in range(0, len(out_audio) - len(audio) + 1, 640)
                  if np.array_equal(out_audio[s:s + len(audio)], audio)]
        assert len(starts) == 1
        before = starts[0] // 640
        after = len(out_video) - frames - before
        assert 0 <= before <= 75 and 0 <= after <= 50 and len(out_audio) == 640 * len(out_video) and len(snr) == len(out_video)
        np.testing.assert_array_equal(out_video[before:before + frames], crops)
        assert (out_video[:before] == crops[0]).all() and (out_video[before + frames:] == crops[-1]).all()
        assert not out_face[:before + 1].any() and out_face[before + 1:].all()
        for tone in (out_audio[:before * 640], out_audio[(before + frames) * 640:]):
            if len(tone) >= 640 * 10:  # 0.4 s or more: its RMS is the level within 1 dB
                assert abs(dbfs(tone) - level) < 1.0
        assert offset == 0
        seen.add((before, after))
    assert len(seen) > 1 and max(b for b, _ in seen) > 8  # lengths vary with the seed, and reach past 8 frames


def test_lead_in_prob_is_the_share_of_utterances_lengthened_and_zero_draws_nothing():
    video, face, audio = speech_clip()
    short = video[:20], face[:20], audio[: 20 * 640]
    options = AugmentOptions(**PLAIN, lead_in_prob=0.3, max_lead_in_frames=30, max_trail_frames=30)
    lengthened = [len(Augmenter(options)(*short, np.random.default_rng(seed))[0]) > 20 for seed in range(300)]
    assert 0.22 < np.mean(lengthened) < 0.38
    # off: never lengthened, and every other draw is the one it was without the knob
    noisy = PLAIN | dict(noise_prob=1.0, flip_prob=0.5, random_crop=True)
    off = Augmenter(AugmentOptions(**noisy, lead_in_prob=0.0))(*short, np.random.default_rng(4))
    before = Augmenter(AugmentOptions(**noisy))(*short, np.random.default_rng(4))
    for a, b in zip(off[:4], before[:4]):
        np.testing.assert_array_equal(a, b)
    assert AugmentOptions.evaluation().lead_in_prob == 0.0


def test_labels_are_unchanged_by_a_lead_in(tmp_path):
    """The dataset's item keeps its text and tokens; only the clip grows."""
    video, face, audio = speech_clip()
    np.savez(tmp_path / "a.npz", roi=video, face_found=face, audio=(audio * 32767).astype(np.int16))
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "text": "bin blue at f two now", "features": "a.npz",
                                                  "num_frames": len(video)}) + "\n")
    plain = AVDataset(str(tmp_path / "m.jsonl"), augment=AugmentOptions(**PLAIN))[0]
    longer = AVDataset(str(tmp_path / "m.jsonl"), augment=AugmentOptions(**PLAIN, lead_in_prob=1.0,
                                                                          max_lead_in_frames=40))[0]
    assert longer["text"] == plain["text"] and longer["tokens"].tolist() == plain["tokens"].tolist()
    assert len(longer["video"]) > len(plain["video"])


@pytest.mark.parametrize("bad", [dict(lead_in_prob=1.5), dict(max_trail_frames=-1),
                                 dict(room_tone_dbfs_range=(-40.0, -60.0)), dict(room_tone_dbfs_range=(-60.0, 3.0))])
def test_bad_lead_in_options_are_refused_naming_the_option(bad):
    with pytest.raises(OptionError, match=next(iter(bad))):
        AugmentOptions(**bad)
