"""Fixtures of the inference tests: clips of the shared test corpus and the embedded model."""

from __future__ import annotations

import subprocess

import pytest

import avsr
from tests.conftest import AVSR


@pytest.fixture(scope="module")
def corpus(synth_corpus) -> list[dict]:
    """Twelve utterances of the shared test corpus (a seed the embedded model was not trained on), two by each
    of its six speakers."""
    return synth_corpus.first(12)


@pytest.fixture(scope="module")
def model():
    return avsr.load_model("synth-grid-tiny")


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([AVSR, "transcribe", *args], capture_output=True, text=True, timeout=600, **kwargs)
