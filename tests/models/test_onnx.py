"""ONNX export (``avsr export MODEL model.onnx``) and the onnx backend, on real synthetic clips."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import AVSR, avsr_main, one_line

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

EMBEDDED = Path(__file__).resolve().parents[2] / "avsr" / "assets" / "synth-grid-tiny.pt"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The embedded model exported by the command: its three graphs (av, audio, video)."""
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    done = subprocess.run([AVSR, "export", str(EMBEDDED), str(path)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "the exporter's own notes must not reach the user"
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.audio.onnx", "tiny.onnx", "tiny.video.onnx"]
    return path


@pytest.mark.slow
def test_onnx_graphs_match_pytorch_on_real_clips(exported, prepared_corpus):
    from avsr.data.dataset import AVDataset, collate
    from avsr.models.bundle import load_bundle
    from avsr.models.onnx import OnnxNetwork

    model = load_bundle(EMBEDDED)[0]
    network = OnnxNetwork(exported)
    assert network.modes == ("av", "audio", "video") and network.config == model.config
    dataset = AVDataset(prepared_corpus / "test.jsonl", preprocessing=model.preprocessing)
    batch = collate([dataset[i] for i in range(len(dataset))], model.preprocessing)
    assert len(set(batch.video_lengths.tolist())) > 1, "clips of different lengths: padding must be exercised"
    with torch.no_grad():
        for mode in network.modes:
            ref = model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, mode)
            got = network(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, mode)
            assert torch.equal(got.lengths, ref.lengths)
            valid = torch.arange(ref.log_probs.shape[1])[None] < ref.lengths[:, None]
            assert (got.log_probs - ref.log_probs).abs()[valid].max() < 1e-4, mode
            # the gate's audio weight is a graph output too (1 / 0 in the one-stream modes)
            assert (got.audio_weight - ref.audio_weight).abs()[valid].max() < 1e-4, mode
    assert (ref.audio_weight[valid] == 0).all()  # the video mode ran last


@pytest.mark.slow
def test_onnx_backend_transcribes_exactly_as_pytorch(exported, synth_corpus, tmp_path):
    import avsr

    clips = [str(clip["video"]) for clip in synth_corpus.split("test")]
    runs = {}
    for backend, model in (("torch", "synth-grid-tiny"), ("onnx", str(exported))):
        out = tmp_path / backend
        done = subprocess.run([AVSR, "transcribe", *clips, "--model", model, "--backend", backend, "-o", str(out),
                               "--quiet"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        runs[backend] = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert len(runs["onnx"]) == len(clips)
    for name, ref in runs["torch"].items():
        got = runs["onnx"][name]
        assert got["text"] == ref["text"] and got["mode"] == ref["mode"] == "av"
        assert [w["word"] for w in got["words"]] == [w["word"] for w in ref["words"]]
        assert got["model_id"].startswith("tiny@") and ref["model_id"].startswith("synth-grid-tiny@")
        # written to 3 decimals: equal, or one rounding step apart
        assert [a is None for a in got["audio_weight"]] == [b is None for b in ref["audio_weight"]]  # not read
        assert max(abs(a - b) for a, b in zip(got["audio_weight"], ref["audio_weight"]) if a is not None) < 1.5e-3
    # the Python API loads the graphs by their suffix
    loaded = avsr.load_model(exported)
    assert avsr.transcribe(loaded, clips[0]).text == runs["torch"][Path(clips[0]).stem + ".json"]["text"]


def test_onnx_refusals_are_one_line(tmp_path):
    from avsr.models.bundle import BundleError, load_model
    from avsr.models.onnx import OnnxError, OnnxNetwork

    one_line(avsr_main("export", EMBEDDED, tmp_path / "m.onnx", "--half"), 2, "--half", "float32")
    assert not (tmp_path / "m.onnx").exists()
    one_line(avsr_main("export", tmp_path / "none.pt", tmp_path / "m.onnx"), 2, "none.pt", "not found")
    with pytest.raises(BundleError, match="avsr export .* model.onnx"):
        load_model(EMBEDDED, backend="onnx")
    fake = tmp_path / "fake.onnx"
    fake.write_text("not a graph")
    with pytest.raises(OnnxError, match="fake.onnx: not an ONNX file"):
        OnnxNetwork(fake)
    with pytest.raises(BundleError, match="--backend onnx"):
        load_model(fake, backend="torch")
    one_line(avsr_main("transcribe", tmp_path, "--model", fake, "-o", tmp_path / "out"), 2, "fake.onnx")
