"""``avsr import auto-avsr``: another project's published checkpoint as an avsr bundle."""

from __future__ import annotations

import argparse

from avsr.cli.common import Number

REL_POS = ("latest", "legacy")  # avsr.models.e2e_encoder.REL_POS_VARIANTS (the command line does not import torch)


def add_import(subparsers) -> None:
    parser = subparsers.add_parser("import", help="turn another project's published checkpoint into an avsr bundle")
    sources = parser.add_subparsers(title="sources", metavar="SOURCE", required=True)
    auto = sources.add_parser(
        "auto-avsr", help="a checkpoint of auto_avsr's model zoo (LRS3 VSR/ASR models, or its v1.0.0 AV model)",
        description="Convert a .pth of auto_avsr's model zoo (github.com/mpc001/auto_avsr: vsr_*.pth, asr_*.pth, and "
        "the v1.0.0 release's avsr_*.pth) into a bundle that every avsr command runs: transcribe, render, evaluate. "
        "The bundle carries the model (its sizes read from the checkpoint), auto_avsr's SentencePiece tokenizer, "
        "how it was fed (auto_avsr's mouth crops; the waveform normalised per utterance) and how its authors "
        "decode it (joint CTC/attention beam search, beam 40, CTC weight 0.1). The checkpoint is read without "
        "running any pickled code.",
        epilog="example:\n  avsr import auto-avsr vsr_trlrs2lrs3vox2avsp_base.pth -o lrs3-vsr.pt\n"
        "  avsr transcribe talk.mp4 --model lrs3-vsr.pt", formatter_class=argparse.RawDescriptionHelpFormatter)
    auto.add_argument("checkpoint", metavar="CKPT.pth")
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


def _run_import_auto_avsr(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avsr.io.inputs import OutputError, check_outputs_spare_inputs, ensure_output_dir
    from avsr.models.auto_avsr_import import import_auto_avsr

    output = Path(args.output)
    check_outputs_spare_inputs([output], [args.checkpoint], option="-o")
    ensure_output_dir(output.parent, option="-o's folder")
    if output.exists() and not args.overwrite:
        raise OutputError(f"{output}: exists; pass --overwrite to replace it, or choose another -o")
    network = import_auto_avsr(args.checkpoint, output, args.rel_pos, args.decoder_heads, half=args.half)
    c = network.config
    count = sum(p.numel() for p in network.parameters())
    print(f"{c.modality} model, {count / 1e6:.1f} M parameters ({c.dim} wide, {c.blocks} encoder blocks, "
          f"{c.vocab_size} tokens) -> {output}")
    return 0
