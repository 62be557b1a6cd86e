"""``avsr import auto-avsr``: another project's published checkpoint as an avsr bundle."""

from __future__ import annotations

import argparse

from avsr.cli.common import Number, usage_error

REL_POS = ("latest", "legacy")  # avsr.models.e2e_encoder.REL_POS_VARIANTS (the command line does not import torch)
AV_FUSIONS = ("gate", "xattn")  # of avsr.models.av_model.FUSIONS: the gates, which --audio/--video put on the encoders
COMMAND = "avsr import auto-avsr"


def add_import(subparsers) -> None:
    parser = subparsers.add_parser("import", help="turn another project's published checkpoint into an avsr bundle")
    sources = parser.add_subparsers(title="sources", metavar="SOURCE", required=True)
    auto = sources.add_parser(
        "auto-avsr", help="a checkpoint of auto_avsr's model zoo (LRS3 VSR/ASR models, or its v1.0.0 AV model)",
        description="Convert a .pth of auto_avsr's model zoo (github.com/mpc001/auto_avsr: vsr_*.pth, asr_*.pth, and "
        "the v1.0.0 release's avsr_*.pth) into a bundle that every avsr command runs: transcribe, render, evaluate. "
        "The bundle carries the model (its sizes read from the checkpoint), auto_avsr's SentencePiece tokenizer, "
        "how it was fed (auto_avsr's mouth crops; the waveform normalised per utterance) and how its authors "
        "decode it (joint CTC/attention beam search, beam 40, CTC weight 0.1). With --audio ASR.pth --video VSR.pth "
        "instead of CKPT.pth: avsr's gated AV model (--fusion gate or xattn) on the two encoders, their CTC heads "
        "as its stream heads, the fusion untrained: train it with python train.py fit --config "
        "configs/lrs3_import_av.yaml. Checkpoints are read without running any pickled code.",
        epilog="examples:\n  avsr import auto-avsr vsr_trlrs2lrs3vox2avsp_base.pth -o lrs3-vsr.pt\n"
        "  avsr transcribe talk.mp4 --model lrs3-vsr.pt\n"
        "  avsr import auto-avsr --audio asr_trlrs3vox2_base.pth --video vsr_trlrs2lrs3vox2avsp_base.pth -o av.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    auto.add_argument("checkpoint", metavar="CKPT.pth", nargs="?", help="a VSR, ASR or v1.0.0 AV checkpoint")
    auto.add_argument("--audio", metavar="ASR.pth", help="with --video: the ASR checkpoint whose encoder the gated "
                      "AV model reads the audio with")
    auto.add_argument("--video", metavar="VSR.pth",
                      help="with --audio: the VSR checkpoint whose encoder reads the lips")
    auto.add_argument("--fusion", choices=AV_FUSIONS, default=None,
                      help="with --audio/--video: the gate (default) or the gate over locally cross-attending streams")
    auto.add_argument("-o", "--output", required=True, metavar="BUNDLE.pt")
    auto.add_argument("--rel-pos", default=REL_POS[0], choices=REL_POS,
                      help="the relative-position attention it was trained with: latest (auto_avsr's zoo, default) or "
                      "legacy (older ESPnet recipes); the weights cannot tell")
    auto.add_argument("--decoder-heads", type=Number(int, 1, 64), default=None, metavar="N",
                      help="the decoder's attention heads (the weights cannot tell; default: the encoder's, as in "
                      "every published model)")
    auto.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")
    auto.add_argument("--overwrite", action="store_true", help="replace an existing BUNDLE.pt")
    auto.set_defaults(handler=_run_import_auto_avsr)


def _sources_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the checkpoints named (CKPT.pth, or --audio and --video), or None."""
    pair = args.audio is not None or args.video is not None
    if args.checkpoint is not None and pair:
        return "give one CKPT.pth, or --audio ASR.pth and --video VSR.pth for the gated AV model, not both"
    if args.checkpoint is None and not pair:
        return "give CKPT.pth, or --audio ASR.pth and --video VSR.pth"
    if pair and (args.audio is None or args.video is None):
        missing = "video" if args.video is None else "audio"
        return f"--{missing} is missing: the gated AV model needs both --audio and --video"
    if pair and args.decoder_heads is not None:
        return "--decoder-heads: the gated AV model has no attention decoder (it is read by CTC); leave it out"
    if not pair and args.fusion is not None:
        return "--fusion applies to the gated AV model of --audio and --video"
    return None


def _run_import_auto_avsr(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avsr.io.inputs import OutputError, check_outputs_spare_inputs, ensure_output_dir

    problem = _sources_error(args)
    if problem:
        return usage_error(COMMAND, problem)
    output = Path(args.output)
    inputs = [args.checkpoint] if args.checkpoint is not None else [args.audio, args.video]
    check_outputs_spare_inputs([output], inputs, option="-o")
    ensure_output_dir(output.parent, option="-o's folder")
    if output.exists() and not args.overwrite:
        raise OutputError(f"{output}: exists; pass --overwrite to replace it, or choose another -o")
    if args.checkpoint is None:
        return _import_av(args, output)
    from avsr.models.auto_avsr_import import import_auto_avsr

    network = import_auto_avsr(args.checkpoint, output, args.rel_pos, args.decoder_heads, half=args.half)
    c = network.config
    count = sum(p.numel() for p in network.parameters())
    print(f"{c.modality} model, {count / 1e6:.1f} M parameters ({c.dim} wide, {c.blocks} encoder blocks, "
          f"{c.vocab_size} tokens) -> {output}")
    return 0


def _import_av(args: argparse.Namespace, output) -> int:
    from avsr.models.auto_avsr_import import import_auto_avsr_av

    model = import_auto_avsr_av(args.audio, args.video, output, args.fusion or AV_FUSIONS[0], args.rel_pos,
                                half=args.half)
    c = model.config
    count = sum(p.numel() for p in model.parameters())
    print(f"av model ({c.fusion} fusion) on imported encoders, {count / 1e6:.1f} M parameters ({c.dim} wide, "
          f"{c.audio_layers} audio and {c.video_layers} video encoder blocks, {c.vocab_size} tokens) -> {output}")
    return 0
