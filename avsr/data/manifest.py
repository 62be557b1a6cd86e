"""JSONL manifests: one utterance per line. Relative paths are relative to the manifest's folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from avsr.errors import AvsrError
from avsr.files import write_text_atomic
from avsr.preprocessing import ROI_STYLES


class ManifestError(AvsrError, ValueError):
    """A manifest line that cannot be used."""


def read_jsonl(path: str | Path, required: tuple[str, ...] = ("id",)) -> list[dict]:
    """Records of a JSONL file, each checked for the ``required`` fields."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; check the path")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        number = data[: error.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{number}: not UTF-8 text (byte 0x{data[error.start]:02x}; latin-1 or another "
                            f"encoding?); convert it: iconv -f latin1 -t utf-8 {path} > utf8.jsonl") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path}:{number}: not valid JSON ({error.msg}); one JSON object per line") from None
        missing = [key for key in required if key not in record]
        if missing:
            raise ManifestError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        records.append(record)
    return records


def line_numbers(path: str | Path) -> list[int]:
    """The line number of each record :func:`read_jsonl` returns (blank lines are skipped)."""
    text = Path(path).read_text(encoding="utf-8")
    return [number for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def check_ids(path: str | Path, records: list[dict]) -> None:
    """Refuse ids that would lose or misplace data when each becomes a file ``<id>.npz``: repeated
    ids (also ``a/./b`` against ``a/b``), ids that leave the output folder (``..``, absolute), empty ids.

    Raises:
        ManifestError: one line naming the manifest, the first problems with their line numbers, and the fix.
    """
    problems, first = [], {}
    for number, record in zip(line_numbers(path), records):
        name = str(record["id"])
        parts = Path(name).parts
        if not name.strip() or "\0" in name:
            problems.append(f"line {number}: empty id")
        elif Path(name).is_absolute() or ".." in parts:
            problems.append(f"line {number}: id {name!r} leaves the output folder")
        else:
            key = os.path.normpath(name)
            if key in first:
                problems.append(f"line {number}: id {name!r} repeats line {first[key]}")
            first.setdefault(key, number)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ManifestError(f"{path}: {'; '.join(problems[:3])}{more}; each id names its own feature file "
                            "OUT_DIR/features/<id>.npz: make ids unique relative names")


def resolve(manifest: str | Path, relative: str) -> Path:
    """A path from a manifest, relative to the manifest's folder unless absolute."""
    candidate = Path(relative)
    return candidate if candidate.is_absolute() else Path(manifest).resolve().parent / candidate


def roi_style(path: str | Path, records: list[dict]) -> str:
    """The ROI style (:data:`~avsr.preprocessing.ROI_STYLES`) a prepared manifest's mouth crops were cut in, as its
    lines record it (``roi_style``; lines prepared before it was recorded read as the default style).

    Raises:
        ManifestError: lines of different styles, or a style this avsr does not know.
    """
    styles = sorted({str(record.get("roi_style", ROI_STYLES[0])) for record in records})
    unknown = [style for style in styles if style not in ROI_STYLES]
    if unknown:
        raise ManifestError(f"{path}: roi_style {unknown[0]!r} is a crop this avsr does not know (it cuts "
                            f"{', '.join(ROI_STYLES)}); prepare it again with avsr prepare --roi-style")
    if len(styles) > 1:
        raise ManifestError(f"{path}: its lines hold crops of different ROI styles ({', '.join(styles)}); prepare it "
                            "again with one --roi-style")
    return styles[0] if styles else ROI_STYLES[0]


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    """Write records atomically, one JSON object per line."""
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def check_texts(path: str | Path, records: list[dict], characters: str | None = None,
                normalised: bool = False) -> list[str]:
    """Each record's ``text``, as it is trained or scored on: refuse, before any work, empty text and (with
    ``characters``, a character tokenizer's) characters outside them, each with the manifest's ``file:line``.
    ``normalised``: the texts are first normalised as ``avsr prepare`` does (:func:`avsr.text.normalise`:
    lower case, hyphens to spaces, punctuation dropped), and the normalised texts are returned.

    Raises:
        ManifestError: ``<file>:<line>: ...`` for the first lines at fault, and the fix.
    """
    from avsr.data.tokenizer import CHARACTERS
    from avsr.text import normalise

    problems, texts = [], []
    for number, record in zip(line_numbers(path), records):
        text = record.get("text")
        if not isinstance(text, str):
            problems.append(f"{path}:{number}: text is {type(text).__name__}, not a string")
            texts.append("")
            continue
        text = normalise(text) if normalised else text
        texts.append(text)
        if not text.strip():
            problems.append(f"{path}:{number}: empty text" + (" (after normalising)" if normalised else ""))
        elif characters is not None and (unknown := sorted(set(text) - set(characters))):
            problems.append(f"{path}:{number}: text {text!r} has {''.join(unknown)!r}, which the tokenizer cannot "
                            "encode")
    if problems:
        more = f" (and {len(problems) - 3} more lines)" if len(problems) > 3 else ""
        letters = "a-z, space and apostrophe" if characters and set(characters) == set(CHARACTERS) else characters
        fix = (f"write its words in the tokenizer's characters ({letters}; numbers as words)" if characters
               else "give each line its transcript")
        raise ManifestError(f"{'; '.join(problems[:3])}{more}; {fix}, or remove the line")
    return texts
