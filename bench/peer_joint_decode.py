"""Make a full-size random auto_avsr model with the reference's own code, and time the reference's
encoder and its default decoding on one clip, in its own interpreter (``python -m bench.import_speed``
runs it and compares):

    PYTHONPATH=AUTO_AVSR_CHECKOUT PEER_PYTHON -m bench.peer_joint_decode --modality video --folder DIR

AUTO_AVSR_CHECKOUT is an auto_avsr checkout (the baseline: commit 182b628, in a venv of its own with
torch, torchaudio, torchvision, pytorch-lightning and sentencepiece). Nothing of the reference is
copied here: its ``E2E`` and ``lightning.get_beam_search_decoder`` (``BatchBeamSearch``, beam 40, CTC
weight 0.1, as its ``ModelModule.forward`` decodes) are imported from that checkout and called as that
``forward`` calls them, inside this script's own timing loop. Only numpy and torch are imported besides
the reference (no avsr).

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
``encoder_out.npy`` ``(T, 768)``; prints one JSON line: the encoder's seconds, the decoding's seconds per repeat, the
best hypothesis's token ids (``<eos>`` included) and score.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

VOCAB_SIZE, FRAME_RATE, SAMPLES_PER_FRAME = 5049, 25, 640


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modality", choices=("video", "audio"), default="video")
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logit-scale", type=float, default=8.0)
    parser.add_argument("--max-tokens", type=int, default=35)
    return parser.parse_args()


def make_model(args: argparse.Namespace):
    from espnet.nets.pytorch_backend.e2e_asr_conformer import E2E  # the reference's own model

    torch.manual_seed(args.seed)
    model = E2E(VOCAB_SIZE, args.modality).eval()
    with torch.no_grad():
        model.decoder.output_layer.weight.mul_(args.logit_scale)
        model.ctc.ctc_lo.weight.mul_(args.logit_scale)
    return model


def make_input(args: argparse.Namespace) -> torch.Tensor:
    generator = torch.Generator().manual_seed(args.seed + 1)
    frames = round(args.seconds * FRAME_RATE)
    if args.modality == "video":
        return torch.randn(frames, 1, 88, 88, generator=generator)  # (T, 1, 88, 88), as VideoTransform leaves it
    audio = torch.randn(frames * SAMPLES_PER_FRAME, 1, generator=generator)
    return torch.nn.functional.layer_norm(audio, audio.shape, eps=1e-8)  # (N, 1), as AudioTransform leaves it


def main() -> None:
    args = arguments()
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
    print(json.dumps({"encoder_seconds": encoder_seconds, "decode_seconds": decode_seconds,
                      "token_ids": best.yseq[1:].tolist(), "score": float(best.score),
                      "frames": int(encoder_out.shape[0])}))


if __name__ == "__main__":
    main()
