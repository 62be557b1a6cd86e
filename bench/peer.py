"""A peer's own code, unmodified, timed in its own interpreter: one job per subcommand, each run by the
bench that compares it with this project's.

    PYTHONPATH=PEER_PREPARATION_DIR PEER_PYTHON -m bench.peer lip-roi CLIP [CLIP ...]
    PYTHONPATH=AUTO_AVSR_CHECKOUT PEER_PYTHON -m bench.peer joint-decode --modality video --folder DIR
        [--seconds 10] [--threads 2] [--repeats 1] [--seed 0] [--logit-scale 8] [--max-tokens 35]
    PYTHONPATH=AUTO_AVSR_CHECKOUT PEER_PYTHON -m bench.peer transcribe --modality video --folder DIR
        --input CROPS.npy [--threads 2] [--seed 0] [--logit-scale 8]
    PYTHONPATH=AUTO_AVSR_CHECKOUT PEER_PYTHON -m bench.peer model --modality video --folder DIR

Nothing of the peer is copied here: its modules are imported from the folder on ``PYTHONPATH`` and
called as its own code calls them, inside this script's timing loops. Only the standard library,
numpy and what a job needs (OpenCV for ``lip-roi``, torch for ``joint-decode``) are imported besides
the peer (no avsr), so the script runs in the peer's environment. Each job prints one JSON line.

``lip-roi`` (``python -m bench.lip_roi_speed --peer`` runs it): auto_avsr's MediaPipe lip-ROI
preparation. PEER_PREPARATION_DIR is the ``preparation`` folder of an auto_avsr checkout (the
baseline: commit 182b628, with ``mediapipe==0.10.14``, ``scikit-image`` and ``opencv-python`` in a
scratch environment); its ``LandmarksDetector`` and ``VideoProcess`` are called as its
``AVSRDataLoader`` calls them. Timed, per batch of clips in one process: the detector's construction,
then for each clip the decode (OpenCV, RGB frames at the file's own rate, as the peer's loader reads
them), the face detection and the crop. Printed: input frames, seconds, and frames with a detection.

``joint-decode`` (``python -m bench.import_speed`` runs it and compares): a full-size random auto_avsr
model made with the reference's own code, its encoder and its default decoding timed on one clip.
AUTO_AVSR_CHECKOUT is an auto_avsr checkout (the baseline: commit 182b628, in a venv of its own with
torch, torchaudio, torchvision, pytorch-lightning and sentencepiece). Its ``E2E`` and
``lightning.get_beam_search_decoder`` (``BatchBeamSearch``, beam 40, CTC weight 0.1, as its
``ModelModule.forward`` decodes) are called as that ``forward`` calls them.

The model is ``E2E(5049, modality)`` with torch's own initialisation from ``--seed``; the decoder's
and the CTC head's output weights are then multiplied by ``--logit-scale``, so that their
distributions are peaked, as after training, rather than near-uniform (near-ties everywhere). The
input is ``--seconds`` of noise at 25 frames per second (video ``(T, 1, 88, 88)``, audio
``(T * 640, 1)``), normalised as the reference's transforms leave it.

An untrained model never makes ``<eos>`` likely, so its default search would run to as many tokens as
frames (250 for 10 s). The search is therefore run with the reference's own fixed-length rule,
``BatchBeamSearch.forward(x, maxlenratio=-MAX_TOKENS)`` (``--max-tokens``, about the tokens of 10 s of
speech), which differs from the default only in ending at that length instead of at end detection.

Writes to ``--folder``: ``model.pth`` (the state dict, as the model zoo stores it), ``input.npy``,
``encoder_out.npy`` ``(T, 768)``; prints the encoder's seconds, the decoding's seconds per repeat, the
best hypothesis's token ids (``<eos>`` included) and score.

``transcribe`` (``python -m bench.import_speed --transcribe CLIP`` runs it and compares): the same
random model (written to ``--folder`` as ``model.pth``) loaded by the reference's ``ModelModule``
(``pretrained_model_path``) and its ``forward`` called on one clip, as its ``InferencePipeline`` calls
it: the clip's 16 kHz audio ``(N,)`` from ``--input`` (``.npy``) through its test ``AudioTransform``,
or its mouth crops ``(T, 96, 96) uint8`` through its test ``VideoTransform`` (centre crop 88,
normalised). Its default decoding: ``BatchBeamSearch``, beam 40, CTC weight 0.1, end detection and a
length limit of one token per frame. Prints the text and its seconds. ``model`` only writes that
model (``python -m bench.import_speed --memory-minutes`` imports it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

VOCAB_SIZE, FRAME_RATE, SAMPLES_PER_FRAME = 5049, 25, 640


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    jobs = parser.add_subparsers(dest="job", required=True)
    lip_roi = jobs.add_parser("lip-roi", help="auto_avsr's MediaPipe lip-ROI preparation over the clips")
    lip_roi.add_argument("clips", nargs="+")
    decode = jobs.add_parser("joint-decode", help="auto_avsr's encoder and joint decoding on a random model")
    decode.add_argument("--modality", choices=("video", "audio"), default="video")
    decode.add_argument("--folder", type=Path, required=True)
    decode.add_argument("--seconds", type=float, default=10.0)
    decode.add_argument("--threads", type=int, default=2)
    decode.add_argument("--repeats", type=int, default=1)
    decode.add_argument("--seed", type=int, default=0)
    decode.add_argument("--logit-scale", type=float, default=8.0)
    decode.add_argument("--max-tokens", type=int, default=35)
    model = jobs.add_parser("model", help="only write the full-size random model of joint-decode as a .pth")
    model.add_argument("--modality", choices=("video", "audio"), default="video")
    model.add_argument("--folder", type=Path, required=True)
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--logit-scale", type=float, default=8.0)
    whole = jobs.add_parser("transcribe", help="auto_avsr's ModelModule.forward on a clip, random model")
    whole.add_argument("--modality", choices=("video", "audio"), default="video")
    whole.add_argument("--folder", type=Path, required=True)
    whole.add_argument("--input", type=Path, required=True, help="audio (N,) float32 or crops (T, 96, 96) uint8")
    whole.add_argument("--threads", type=int, default=2)
    whole.add_argument("--seed", type=int, default=0)
    whole.add_argument("--logit-scale", type=float, default=8.0)
    return parser.parse_args()


def read_rgb(path: str) -> np.ndarray:
    """A video's frames ``(F, H, W, 3)`` at its own rate, RGB, as the peer's loader reads them."""
    import cv2

    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def lip_roi(args: argparse.Namespace) -> dict:
    import cv2  # noqa: F401 (imported before the clock starts: imports are not timed)

    try:
        from detectors.mediapipe.detector import LandmarksDetector  # the peer's own modules
        from detectors.mediapipe.video_process import VideoProcess
    except ModuleNotFoundError as error:
        raise SystemExit(f"{error}: put auto_avsr's preparation folder on PYTHONPATH") from None

    started = time.perf_counter()
    detector, process = LandmarksDetector(), VideoProcess(convert_gray=True)
    frames = found = 0
    for clip in args.clips:
        video = read_rgb(clip)
        landmarks = detector(video)
        crops = process(video, landmarks)
        assert crops is not None and len(crops) == len(video), f"{clip}: the peer cut no crops"
        frames += len(video)
        found += sum(lm is not None for lm in landmarks)
    return {"frames": frames, "seconds": time.perf_counter() - started, "found": found}


def make_model(args: argparse.Namespace):
    import torch
    from espnet.nets.pytorch_backend.e2e_asr_conformer import E2E  # the reference's own model

    torch.manual_seed(args.seed)
    model = E2E(VOCAB_SIZE, args.modality).eval()
    with torch.no_grad():
        model.decoder.output_layer.weight.mul_(args.logit_scale)
        model.ctc.ctc_lo.weight.mul_(args.logit_scale)
    return model


def make_input(args: argparse.Namespace):
    import torch

    generator = torch.Generator().manual_seed(args.seed + 1)
    frames = round(args.seconds * FRAME_RATE)
    if args.modality == "video":
        return torch.randn(frames, 1, 88, 88, generator=generator)  # (T, 1, 88, 88), as VideoTransform leaves it
    audio = torch.randn(frames * SAMPLES_PER_FRAME, 1, generator=generator)
    return torch.nn.functional.layer_norm(audio, audio.shape, eps=1e-8)  # (N, 1), as AudioTransform leaves it


def joint_decode(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    try:
        from datamodule.transforms import TextTransform
        from lightning import get_beam_search_decoder
    except ModuleNotFoundError as error:
        raise SystemExit(f"{error}: put an auto_avsr checkout on PYTHONPATH") from None
    args.folder.mkdir(parents=True, exist_ok=True)
    model, sample = make_model(args), make_input(args)
    torch.save(model.state_dict(), args.folder / "model.pth")
    np.save(args.folder / "input.npy", sample.numpy())
    decode_seconds = []
    with torch.no_grad():
        started = time.perf_counter()  # as ModelModule.forward runs the model
        encoder_out = model.encoder(model.proj_encoder(model.frontend(sample.unsqueeze(0))), None)[0].squeeze(0)
        encoder_seconds = time.perf_counter() - started  # (T, D) above
        np.save(args.folder / "encoder_out.npy", encoder_out.numpy())
        for _ in range(args.repeats):
            beam_search = get_beam_search_decoder(model, TextTransform().token_list)
            started = time.perf_counter()
            best = beam_search(encoder_out, maxlenratio=-args.max_tokens)[0]
            decode_seconds.append(time.perf_counter() - started)
    return {"encoder_seconds": encoder_seconds, "decode_seconds": decode_seconds,
            "token_ids": best.yseq[1:].tolist(), "score": float(best.score), "frames": int(encoder_out.shape[0])}


def transcribe(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    try:
        from datamodule.transforms import AudioTransform, VideoTransform
        from lightning import ModelModule
    except ModuleNotFoundError as error:
        raise SystemExit(f"{error}: put an auto_avsr checkout on PYTHONPATH") from None
    write_model(args)
    module = ModelModule(argparse.Namespace(modality=args.modality,
                                            pretrained_model_path=str(args.folder / "model.pth"))).eval()
    data = torch.from_numpy(np.load(args.input))
    if args.modality == "video":
        sample = VideoTransform("test")(data[:, None].float())  # (T, 1, 88, 88)
    else:
        sample = AudioTransform("test")(data[:, None].float())  # (N, 1)
    with torch.no_grad():
        started = time.perf_counter()
        text = module(sample)
        seconds = time.perf_counter() - started
    return {"text": text, "seconds": seconds}


def write_model(args: argparse.Namespace) -> dict:
    import torch

    args.folder.mkdir(parents=True, exist_ok=True)
    torch.save(make_model(args).state_dict(), args.folder / "model.pth")
    return {"model": str(args.folder / "model.pth")}


def main() -> None:
    args = arguments()
    jobs = {"lip-roi": lip_roi, "joint-decode": joint_decode, "transcribe": transcribe, "model": write_model}
    print(json.dumps(jobs[args.job](args)))


if __name__ == "__main__":
    main()
