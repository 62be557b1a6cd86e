"""Is one model better than another on the same utterances? ``avsr evaluate --compare``.

Two models scored on the same utterances are not independent, so whether A's lead over B is more
than chance is read from a *paired* bootstrap: each round resamples utterances and scores both on
the same draw, so the interval reflects their difference rather than each one's own spread.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avsr.evaluation.sweep import SweepRow
from avsr.files import write_text_atomic


@dataclass(frozen=True)
class PairedRow:
    """One condition of a model (A) against the compared model (B) on the same utterances and noise."""

    model: str  # A
    compared_with: str  # B
    mode: str  # both are read in this mode
    noise: str
    snr_db: float | None
    av_offset_ms: int
    wer: float  # A's corpus WER
    compared_wer: float  # B's
    gain: float  # 1 - WER_A / WER_B: 0.2 = A makes 20 % fewer word errors; NaN where B makes none
    gain_low: float  # paired bootstrap 95 % interval of the gain
    gain_high: float
    utterances: int


def paired_gain(errors_a: np.ndarray, errors_b: np.ndarray, seed: int,
                rounds: int = 1000) -> tuple[float, float, float]:
    """How much lower A's corpus WER is than B's, relative to B's (``1 - WER_A / WER_B``), from the
    word edits of each utterance ``(U,)`` of each, with a paired bootstrap 95 % interval. Returns
    ``(gain, low, high)``; NaN where B makes no error (no relative gain is defined), and draws in
    which B makes none are left out of the interval."""
    if errors_b.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(errors_a), (rounds, len(errors_a)))
    a, b = errors_a[picks].sum(axis=1), errors_b[picks].sum(axis=1)
    gains = 1 - a[b > 0] / b[b > 0]
    return float(1 - errors_a.sum() / errors_b.sum()), float(np.percentile(gains, 2.5)), \
        float(np.percentile(gains, 97.5))


def paired_rows(rows: list[SweepRow], compared_with: str, seed: int) -> list[PairedRow]:
    """Each row of another model against ``compared_with``'s row of the same mode, noise, SNR and
    offset (rows without such a partner, a mode B cannot run, are left out)."""
    def condition(row: SweepRow) -> tuple:
        return row.mode, row.noise, row.snr_db, row.av_offset_ms

    baseline = {condition(row): row for row in rows if row.model == compared_with}
    paired = []
    for row in rows:
        other = baseline.get(condition(row))
        if row.model == compared_with or other is None:
            continue
        gain, low, high = paired_gain(np.asarray(row.errors), np.asarray(other.errors), seed)
        paired.append(PairedRow(row.model, compared_with, row.mode, row.noise, row.snr_db, row.av_offset_ms, row.wer,
                                other.wer, gain, low, high, row.utterances))
    return paired


def format_paired(paired: list[PairedRow]) -> str:
    """The comparison as a Markdown table (printed, and ``compare.md``)."""
    offsets = any(p.av_offset_ms for p in paired)
    lines = ["| model | compared with | mode | noise | SNR dB |" + (" offset ms |" if offsets else "") +
             " WER % | its WER % | gain % | paired 95 % CI | utts |",
             "|---|---|---|---|---|" + ("---|" if offsets else "") + "---|---|---|---|---|"]
    for p in paired:
        snr = "clean" if p.snr_db is None else f"{p.snr_db:g}"
        lines.append(f"| {p.model} | {p.compared_with} | {p.mode} | {p.noise} | {snr} |" +
                     (f" {p.av_offset_ms:+d} |" if offsets else "") +
                     f" {100 * p.wer:.1f} | {100 * p.compared_wer:.1f} | {100 * p.gain:.1f} | "
                     f"{100 * p.gain_low:.1f} … {100 * p.gain_high:.1f} | {p.utterances} |")
    return "\n".join(lines) + "\n"


def write_paired(paired: list[PairedRow], out_dir: str | Path) -> list[Path]:
    """``compare.csv`` and ``compare.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(PairedRow.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    for row in paired:
        writer.writerow({k: "" if v is None else f"{v:.4f}" if isinstance(v, float) else v
                         for k, v in asdict(row).items()})
    write_text_atomic(out_dir / "compare.csv", buffer.getvalue())
    write_text_atomic(out_dir / "compare.md", format_paired(paired))
    return [out_dir / "compare.csv", out_dir / "compare.md"]
