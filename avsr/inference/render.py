"""``avsr render``: the input video with what the model saw and did, frame by frame — the mouth
box it read, a strip that is green in the speech regions (what the model read), a bar of the gate's
audio/video weights (with an xattn model, beside it the offset of the lip frame the audio attended to),
and the transcript as it is spoken. With several faces, a box on each, the speaking one's highlighted, and
the words labelled with the face that spoke them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from avsr.inference.prepare import PreparedInput, prepare_input
from avsr.inference.transcribe import Transcriber, Transcript
from avsr.io.inputs import OutputError, check_outputs_spare_inputs, ensure_output_dir
from avsr.io.lip_roi import LipRoiOptions
from avsr.io.frames import frame_to_rgb
from avsr.io.media import MediaError, iter_video_frames
from avsr.io.writer import write_video
from avsr.parallel import landmarkers_per_file
from avsr.preprocessing import FRAME_S, VIDEO_FPS

AUDIO_COLOUR = (255, 160, 40)  # RGB: the audio share of the bar
SPEECH_COLOUR = (80, 200, 120)  # the strip above the bar, in a speech region (what the model read)
VIDEO_COLOUR = (60, 140, 255)  # the video (lips) share
BOX_COLOUR = (40, 220, 90)  # the mouth crop's outline
PANEL_COLOUR = (24, 24, 24)
FACE_COLOUR = (160, 160, 160)  # with several faces: each face's box ...
SPEAKER_COLOUR = (255, 210, 0)  # ... and the speaking one's


def panel_height(width: int) -> int:
    """Height of the strip added under each frame: the weight bar and two lines of text."""
    return 2 * max(24, round(width * 0.09) // 2)


def mouth_box(transform: np.ndarray, crop_size: int = LipRoiOptions.crop_size) -> np.ndarray | None:
    """The crop square's corners in image pixels ``(4, 2)``, from an image-to-crop affine map
    ``(2, 3)``; None where no face was found (NaN map)."""
    if not np.isfinite(transform).all():
        return None
    inverse = cv2.invertAffineTransform(transform.astype(np.float64))
    corners = np.array([[0, 0], [crop_size, 0], [crop_size, crop_size], [0, crop_size]], np.float64)
    return corners @ inverse[:, :2].T + inverse[:, 2]


def bar_split(width: int, audio_weight: float) -> int:
    """Pixels of a ``width``-wide bar given to audio (the rest shows the video weight)."""
    return int(round(width * min(max(audio_weight, 0.0), 1.0)))


def spoken_text(transcript: Transcript, time_s: float, max_chars: int) -> str:
    """The words whose start has passed at ``time_s``, the last ``max_chars`` characters of them; with
    several faces speaking, ``[face N]`` before each change of speaker."""
    faces = [None if getattr(w, "face", None) is None else w.face["id"] for w in transcript.words]
    several = len(set(faces) - {None}) > 1
    words, speaker = [], None
    for word, face in zip(transcript.words, faces):
        if word.start_s > time_s:
            break
        if several and face is not None and face != speaker:
            words.append(f"[face {face}]")
            speaker = face
        words.append(word.word)
    text = " ".join(words)
    return text if len(text) <= max_chars else "..." + text[-max_chars + 3:]  # OpenCV's fonts are ASCII


def draw_frame(image: np.ndarray, index: int, prepared: PreparedInput, transcript: Transcript) -> np.ndarray:
    """One output frame: ``image`` (RGB) with the mouth box, above a panel with the weight bar
    and the running transcript."""
    height, width = image.shape[:2]
    panel = panel_height(width)
    canvas = np.empty((height + panel, width, 3), np.uint8)
    canvas[:height] = image
    canvas[height:] = PANEL_COLOUR
    frame = min(index, prepared.frames - 1)
    found = bool(prepared.face_found[frame])
    box = mouth_box(prepared.transforms[frame]) if prepared.transforms is not None and found else None
    if box is not None:
        cv2.polylines(canvas, [box.round().astype(np.int32)], True, BOX_COLOUR, max(2, width // 200),
                      cv2.LINE_AA)
    draw_faces(canvas[:height], frame, prepared)
    bar_top, bar_bottom = height + panel // 8, height + panel // 2 - panel // 16
    scale = panel / 110
    speaking = any(a <= index * FRAME_S < b for a, b in transcript.speech_regions)
    canvas[height: height + max(2, panel // 16)] = SPEECH_COLOUR if speaking else PANEL_COLOUR
    if transcript.audio_weight and not speaking:
        canvas[bar_top:bar_bottom] = (90, 90, 90)
        label = "no speech: not read"
    elif transcript.audio_weight:
        weight = transcript.audio_weight[frame]
        split = bar_split(width, weight)
        canvas[bar_top:bar_bottom, :split] = AUDIO_COLOUR
        canvas[bar_top:bar_bottom, split:] = VIDEO_COLOUR
        label = f"audio {weight:.2f} | lips {1 - weight:.2f}" + ("" if found else " (no face)")
        if transcript.attention_offset_frames:  # xattn: the video frame the audio looked up, and how surely
            offset, peak = transcript.attention_offset_frames[frame], transcript.attention_peak[frame]
            label += f" | lips at {round(offset * FRAME_S * 1000):+d} ms ({peak:.2f})"
    else:  # a fusion without per-frame weights (concat, sum)
        canvas[bar_top:bar_bottom] = (90, 90, 90)
        label = f"{transcript.mode} mode: no gate weights"
    cv2.putText(canvas, label, (4, bar_bottom - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    (char_width, _), _ = cv2.getTextSize("M", cv2.FONT_HERSHEY_SIMPLEX, scale * 1.2, 1)
    text = spoken_text(transcript, (index + 1) * FRAME_S, max(8, width // max(char_width, 1)))
    cv2.putText(canvas, text, (4, height + panel - panel // 8), cv2.FONT_HERSHEY_SIMPLEX, scale * 1.2,
                (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def draw_faces(image: np.ndarray, frame: int, prepared: PreparedInput) -> None:
    """With several faces: a box on each face found at ``frame``, labelled with its id, the one read
    (speaking) thicker in SPEAKER_COLOUR (drawn on ``image`` in place)."""
    boxes = prepared.face_boxes
    if boxes is None or len(boxes) < 2:
        return
    width = image.shape[1]
    speaking = -1 if prepared.face_ids is None else int(prepared.face_ids[frame])
    for face, box in enumerate(boxes[:, frame]):
        if not np.isfinite(box).all():
            continue
        x0, y0, x1, y1 = np.round(box).astype(int)
        colour = SPEAKER_COLOUR if face == speaking else FACE_COLOUR
        thickness = max(3, width // 150) if face == speaking else max(1, width // 300)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)
        cv2.putText(image, f"face {face}" + (" (speaking)" if face == speaking else ""), (x0 + 2, max(y0 - 5, 12)),
                    cv2.FONT_HERSHEY_SIMPLEX, max(0.4, width / 900), colour, 1, cv2.LINE_AA)


def render(path: str | Path, out_path: str | Path, transcriber: Transcriber, overwrite: bool = False) -> Transcript:
    """Transcribe ``path`` and write ``out_path`` (mp4, 25 fps, the input's audio): each frame with
    the mouth box, the gate's weights and the transcript so far. Written to a temporary name and
    renamed when complete.

    Raises:
        OutputError: ``out_path`` is the input, exists (without ``overwrite``), or its folder cannot take it
            (checked before any work).
        MediaError: the input cannot be read, or has no video track.
    """
    check_outputs_spare_inputs([out_path], [path])
    if Path(out_path).is_dir():
        raise OutputError(f"{out_path}: -o is a folder; render writes one video: name the file, -o "
                          f"{Path(out_path) / (Path(path).stem + '.render.mp4')}")
    ensure_output_dir(Path(out_path).parent, option="-o's folder")
    if not overwrite and (Path(out_path).exists() or Path(out_path).is_symlink()):
        raise OutputError(f"{out_path}: exists; pass --overwrite to replace it, or choose another -o")
    prepared = prepare_input(path, transcriber.options.detect_every, transcriber.options.crop_memory_mb,
                             transcriber.options.audio_memory_mb, landmarkers=landmarkers_per_file(1),
                             reader=transcriber.reader, roi_style=transcriber.model.preprocessing.roi_style,
                             every_face=transcriber.options.every_face)
    try:
        if not prepared.has_video:
            raise MediaError(path, "no_video", "has no video track to draw on; use avsr transcribe for audio files")
        transcript = transcriber.recognise(prepared)
    finally:
        prepared.close()  # the crops are not drawn, only the box they were cut from

    def frames() -> Iterator[np.ndarray]:
        reformatter = VideoReformatter()
        for index, frame in enumerate(iter_video_frames(path)):
            image = frame_to_rgb(frame, reformatter=reformatter)
            if image.shape[0] % 2 or image.shape[1] % 2:  # 4:2:0 video needs even sides
                image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
            yield draw_frame(image, index, prepared, transcript)

    write_video(out_path, frames(), fps=VIDEO_FPS, audio=prepared.audio[:] if prepared.has_audio else None)
    return transcript
