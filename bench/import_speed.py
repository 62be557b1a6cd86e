"""Imported auto_avsr models: the project's joint CTC/attention decoding against the reference's own
``BatchBeamSearch`` on the same encoder output, in one run; and the CTC-only path.

    python -m bench.import_speed --peer AUTO_AVSR_CHECKOUT --peer-python PEER_VENV/bin/python
        [--modalities video audio] [--seconds 10] [--threads 2] [--repeats 3] [--max-tokens 35]

Per modality (video: the VSR model, audio: the ASR model), ``python -m bench.peer joint-decode`` runs in the
reference's own interpreter (``--peer-python``, with the ``--peer`` checkout on its path): it makes a
full-size random model with the reference's code (``E2E(5049, modality)``, 250 M / 243 M parameters,
output layers sharpened), a ``--seconds`` noise clip, runs the reference's encoder once and its
decoding ``--repeats`` times (``get_beam_search_decoder``: beam 40, CTC weight 0.1, pre-beam 60, as
its ``ModelModule.forward``; with its fixed-length rule at ``--max-tokens``, see that module), and
writes the model (``.pth``), the input and its encoder output. Then, here: the ``.pth`` is imported
(``torch.load(weights_only=True)``, ``convert_auto_avsr``), the project's encoder runs on the same input
(its largest difference from the reference's output is printed), and on the *reference's* encoder
output the project's joint decoding (the same settings, CTC head included in the time) runs
``--repeats`` times, its best token ids compared with the reference's; then the CTC head alone
(greedy), its token error rate against the joint result (token edit distance / joint tokens).

Both interpreters use ``--threads`` torch threads and run one after the other. Times are medians of
the repeats, wall clock inside each process (model building, imports and file writing excluded).
Random weights give junk transcripts; only speed and sameness are measured here.

    python -m bench.import_speed --peer AUTO_AVSR_CHECKOUT --peer-python PEER_VENV/bin/python
        --transcribe CLIP [--modalities video audio] [--detect-every 6]

``--transcribe`` checks the whole path a user takes instead of timing decoding: per modality the
reference (``python -m bench.peer transcribe``) makes its full-size random model, writes it as a
``.pth`` and reads CLIP with its own ``ModelModule.forward`` (its default decoding, end detection
included); the VSR reference is fed the crops of ``avsr lip-roi --roi-style auto-avsr`` at the same
landmark stride as ``avsr transcribe``, the ASR reference the clip's 16 kHz audio. Then, as a user
would: ``avsr import auto-avsr`` on that ``.pth`` and ``avsr transcribe --model IMPORTED --av-sync off``,
once with ``--no-vad`` (the whole clip, as the reference reads it) and once at the defaults (the
speech regions only). Printed: the texts and their character error rate against the reference's.

    python -m bench.import_speed --peer ... --peer-python ... --memory-minutes 10 [1 3] [--modalities video audio]

``--memory-minutes`` measures peak memory instead: synthetic clips joined into one file of each length,
and per modality the reference's full-size random model (``bench.peer model``) imported and run by
``avsr transcribe --decoder ctc`` at its defaults otherwise, in a process of its own (peak RSS from
``getrusage`` of the child). CTC because a random model never ends a joint search before its length
limit in any speech region; the encoder, the crops and the region cutting are the same either way.
The child samples its own resident set every 20 ms (:data:`STAGES`): printed are the imports alone
and the peak of each stage (the model's loading, the file's preparation, the forward passes over
groups of windows, the rest of recognition), and the resident set before each forward pass.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avsr.decoding.greedy import greedy_token_ids
from avsr.decoding.joint import JointOptions, joint_beam_search
from avsr.models.e2e import E2EModel, convert_auto_avsr
from avsr.text import edit_distance
from bench.common import ROOT


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", type=Path, required=True, help="an auto_avsr checkout (commit 182b628)")
    parser.add_argument("--peer-python", required=True, help="the interpreter of the reference's venv")
    parser.add_argument("--modalities", nargs="+", choices=("video", "audio"), default=["video", "audio"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=35)
    parser.add_argument("--transcribe", metavar="CLIP", type=Path,
                        help="instead of timing: the reference's transcript of CLIP against avsr transcribe's")
    parser.add_argument("--detect-every", type=int, default=6, help="landmark stride of both (--transcribe)")
    parser.add_argument("--memory-minutes", type=float, nargs="+",
                        help="instead of timing: peak memory on a file of each of these lengths")
    return parser.parse_args()


def run_peer(args: argparse.Namespace, job: str, modality: str, folder: Path, *options: str) -> dict:
    """The reference's side, ``python -m bench.peer JOB`` in its own interpreter; its JSON line."""
    command = [args.peer_python, "-m", "bench.peer", job, "--modality", modality, "--folder", str(folder), *options]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env=os.environ | {"PYTHONPATH": str(args.peer.resolve())})
    if done.returncode:
        raise RuntimeError(f"the reference's side failed: {done.stderr.strip().splitlines()[-3:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed(function, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls, and the last result."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def ours(args: argparse.Namespace, modality: str, folder: Path) -> dict:
    """The project's side on the reference's files: import, encoder, joint decoding, CTC alone."""
    config, state_dict = convert_auto_avsr(torch.load(folder / "model.pth", weights_only=True))
    model = E2EModel(config).eval()
    model.load_state_dict(state_dict)
    sample = torch.from_numpy(np.load(folder / "input.npy"))
    reference_out = torch.from_numpy(np.load(folder / "encoder_out.npy"))  # (T, D)
    with torch.inference_mode():
        started = time.perf_counter()
        if modality == "video":
            encoder_out, _ = model.encode(None, None, sample[None, :, 0], None)  # (1, T, 88, 88) in
        else:
            encoder_out, _ = model.encode(sample[None, :, 0], None, None, None)  # (1, N) in
        encoder_seconds = time.perf_counter() - started

    def joint() -> list[int]:
        with torch.inference_mode():
            log_probs = torch.log_softmax(model.ctc(reference_out), -1)  # (T, V)
        best = joint_beam_search(model.decoder, reference_out, log_probs, config.eos, config.eos,
                                 options=JointOptions(max_tokens=args.max_tokens))[0]
        return [*best.token_ids, config.eos]

    def ctc_only() -> list[int]:
        with torch.inference_mode():
            log_probs = torch.log_softmax(model.ctc(reference_out), -1)
        return greedy_token_ids(log_probs[None], torch.tensor([len(log_probs)]))[0]

    decode_seconds, ids = timed(joint, args.repeats)
    greedy_seconds, greedy = timed(ctc_only, args.repeats)
    joint_tokens = ids[:-1]
    return {"encoder_seconds": encoder_seconds, "decode_seconds": decode_seconds, "token_ids": ids,
            "encoder_difference": float((encoder_out[0] - reference_out).abs().max()),
            "greedy_seconds": greedy_seconds,
            "greedy_token_errors": edit_distance(joint_tokens, greedy) / max(len(joint_tokens), 1)}


def avsr_command(*arguments: str) -> None:
    """Run ``avsr ARGUMENTS`` as a user does; its last stderr lines on failure."""
    done = subprocess.run(["avsr", *arguments], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"avsr {arguments[0]} failed: {done.stderr.strip().splitlines()[-3:]}")


def transcribed(clip: Path, bundle: Path, folder: Path, *options: str) -> str:
    """The text of ``avsr transcribe`` with ``bundle`` on ``clip`` (its .json)."""
    avsr_command("transcribe", str(clip), "--model", str(bundle), "--av-sync", "off", "-o", str(folder),
                 "-f", "json", "--quiet", *options)
    return json.loads((folder / f"{clip.stem}.json").read_text())["text"]


def compare_transcripts(args: argparse.Namespace) -> None:
    """``--transcribe``: the reference's text of one clip against the project's, per modality."""
    from avsr.io.lip_roi import LipRoi
    from avsr.io.media import load_media
    from avsr.text import char_errors

    rows = []
    for modality in args.modalities:
        with tempfile.TemporaryDirectory(prefix="import_transcribe_") as tmp:
            folder = Path(tmp)
            if modality == "video":
                avsr_command("lip-roi", str(args.transcribe), "--roi-style", "auto-avsr", "--detect-every",
                             str(args.detect_every), "-o", str(folder / "roi"), "--quiet")
                np.save(folder / "input.npy", LipRoi.load(folder / "roi" / f"{args.transcribe.stem}.npz").roi)
            else:
                np.save(folder / "input.npy", load_media(args.transcribe, video=False).audio)
            peer = run_peer(args, "transcribe", modality, folder, "--input", str(folder / "input.npy"),
                            "--threads", str(args.threads))
            avsr_command("import", "auto-avsr", str(folder / "model.pth"), "-o", str(folder / "imported.pt"))
            stride = ("--detect-every", str(args.detect_every))
            whole = transcribed(args.transcribe, folder / "imported.pt", folder / "whole", "--no-vad", *stride)
            regions = transcribed(args.transcribe, folder / "imported.pt", folder / "regions", *stride)
        reference = peer["text"]
        rows.append((modality, reference, whole, regions))
        print(json.dumps({"modality": modality, "reference": peer, "avsr --no-vad": whole, "avsr": regions}),
              flush=True)
    print(f"\n{args.transcribe.name}, full-size random models, landmarks every {args.detect_every} frames")
    print("| model | reference characters | CER, avsr --no-vad | CER, avsr defaults |")
    print("|---|---:|---:|---:|")
    for modality, reference, whole, regions in rows:
        length = max(len(reference.strip()), 1)
        print(f"| {modality} | {length} | {char_errors(reference, whole) / length:.1%} | "
              f"{char_errors(reference, regions) / length:.1%} |")


# The child of --memory-minutes: `avsr ARGS` run in this interpreter while a thread samples its resident set every
# 20 ms and books it to the stage under way ("other" outside them); one JSON line: the RSS with the imports alone,
# each stage's peak, the RSS before each forward pass, and the process's peak (VmHWM).
STAGES = """
import json, sys, threading, time
import avsr.inference.batch as batch, avsr.inference.transcribe as transcribe, avsr.models.loader as loader
from avsr.cli import main

def rss(field="VmRSS"):
    return int(next(line for line in open("/proc/self/status") if line.startswith(field)).split()[1]) // 1024

imports, stage, peaks, before = rss(), ["other"], {}, []

def sample():
    while True:
        peaks[stage[-1]] = max(peaks.get(stage[-1], 0), rss())
        time.sleep(0.02)

def staged(name, function, log=None):
    def run(*args, **kwargs):
        if log is not None:
            log.append(rss())
        stage.append(name)
        try:
            return function(*args, **kwargs)
        finally:
            stage.pop()
    return run

loader.load_model = staged("load", loader.load_model)
batch._prepare_job = staged("prepare", batch._prepare_job)
transcribe.Transcriber.recognise = staged("recognition", transcribe.Transcriber.recognise)
transcribe.Transcriber.forward_group = staged("forward", transcribe.Transcriber.forward_group, before)
threading.Thread(target=sample, daemon=True).start()
code = main(sys.argv[1:])
print(json.dumps({"imports": imports, "stages": peaks, "before_forward": before, "peak": rss("VmHWM")}))
sys.exit(code)
"""


def peak_memory(args: argparse.Namespace) -> None:
    """``--memory-minutes``: ``avsr transcribe`` with each imported full-size model on long files."""
    from bench.common import make_clips, make_long_file
    with tempfile.TemporaryDirectory(prefix="import_memory_") as tmp:
        folder = Path(tmp)
        clips, _ = make_clips(folder / "clips", 8)
        for modality in args.modalities:
            run_peer(args, "model", modality, folder / modality)
            bundle = folder / modality / "imported.pt"
            avsr_command("import", "auto-avsr", str(folder / modality / "model.pth"), "-o", str(bundle))
            (folder / modality / "model.pth").unlink()
        for minutes in args.memory_minutes:
            long_file = folder / f"long_{minutes:g}.mp4"
            duration = make_long_file(clips, long_file, minutes)
            for modality in args.modalities:
                stages_mb(folder, long_file, duration, modality)
            long_file.unlink()


def stages_mb(folder: Path, long_file: Path, duration: float, modality: str) -> None:
    """One ``avsr transcribe`` of ``long_file`` with the imported ``modality`` model (:data:`STAGES`); its line."""
    out = folder / f"out_{modality}_{long_file.stem}"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", STAGES, "transcribe", str(long_file), "--model",
                             str(folder / modality / "imported.pt"), "--decoder", "ctc", "-o", str(out), "--quiet"],
                            capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(f"avsr transcribe failed: {result.stderr.strip().splitlines()[-3:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    stages, before = report["stages"], report["before_forward"]
    parts = ", ".join(f"{name} {stages[name]:,}" for name in ("load", "prepare", "forward", "recognition")
                      if name in stages)
    print(f"{modality}: one file of {duration / 60:.1f} min, full-size imported model, --decoder ctc: "
          f"peak RSS {report['peak']:,} MB, {wall:.0f} s wall (RTF {wall / duration:.3f}); imports alone "
          f"{report['imports']:,} MB; stage peaks (MB): {parts}; before each of {len(before)} forward passes "
          f"{min(before, default=0):,}-{max(before, default=0):,} MB", flush=True)


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    if args.memory_minutes:
        peak_memory(args)
        return
    if args.transcribe:
        compare_transcripts(args)
        return
    rows = []
    for modality in args.modalities:
        with tempfile.TemporaryDirectory(prefix="import_speed_") as tmp:
            peer = run_peer(args, "joint-decode", modality, Path(tmp), "--seconds", str(args.seconds), "--threads",
                            str(args.threads), "--repeats", str(args.repeats), "--max-tokens", str(args.max_tokens))
            mine = ours(args, modality, Path(tmp))
        peer_decode = statistics.median(peer["decode_seconds"])
        rows.append((modality, peer, mine, peer_decode))
        print(json.dumps({"modality": modality, "reference": peer, "avsr": mine}), flush=True)
    print(f"\n{args.seconds:g} s clips ({rows[0][1]['frames']} encoder frames), beam 40, CTC weight 0.1, "
          f"{args.max_tokens} tokens, {args.threads} threads, median of {args.repeats}")
    print("| model | reference decoding s | avsr decoding s | speed-up | same ids | encoder s (ref / avsr) "
          "| max encoder diff | CTC alone s | CTC alone vs joint, token errors |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for modality, peer, mine, peer_decode in rows:
        print(f"| {modality} | {peer_decode:.2f} | {mine['decode_seconds']:.2f} | "
              f"{peer_decode / mine['decode_seconds']:.1f}x | {peer['token_ids'] == mine['token_ids']} | "
              f"{peer['encoder_seconds']:.1f} / {mine['encoder_seconds']:.1f} | {mine['encoder_difference']:.1e} | "
              f"{mine['greedy_seconds']:.3f} | {mine['greedy_token_errors']:.0%} |")


if __name__ == "__main__":
    main()
