"""How much of the mouth's shape the prepared crops carry, read out linearly, on unseen faces.

    python bench/visual_probe.py data/synth_grid data/synth_grid_prepared [--train-utterances 700]

For every utterance of a synthetic corpus (``avsr synth``) that ``avsr prepare manifest`` prepared,
the mouth region of each crop (the centre 64x56 pixels of the 96x96 crop) is downsampled to 16x14
grey levels and the utterance's mean image is subtracted. A ridge regression from those 224 pixels
to the renderer's per-frame ``mouth_open`` and ``mouth_spread`` (the side ``.json`` files, which only
this probe reads) is fitted on training speakers, its strength chosen on the validation speakers,
and scored on the test speakers, whose faces never occur in training. The score is R² of the
within-utterance variation (targets have their utterance mean removed too, since the pixels do).

A change to the renderer or to the lip-ROI stage can be judged in minutes: if R² falls, the crops
carry less of what the lips do. ``--no-mean`` keeps each utterance's mean image (identity and
lighting stay in the pixels) as a control.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from avsr.data.manifest import read_jsonl, resolve

REGION = (64, 56)  # width, height of the mouth region in the middle of the crop, pixels
GRID = (16, 14)  # width, height it is downsampled to
TARGETS = ("mouth_open", "mouth_spread")


def utterance_features(roi: np.ndarray, found: np.ndarray, subtract_mean: bool = True) -> np.ndarray:
    """``(T, 224)`` pixel features of ``(T, S, S) uint8`` crops; rows without a face are NaN."""
    side = roi.shape[1]
    left, top = (side - REGION[0]) // 2, (side - REGION[1]) // 2
    region = roi[:, top:top + REGION[1], left:left + REGION[0]].astype(np.float32) / 255
    small = np.stack([cv2.resize(frame, GRID, interpolation=cv2.INTER_AREA) for frame in region])
    features = small.reshape(len(small), -1)
    if subtract_mean and found.any():
        features = features - features[found].mean(axis=0)
    features[~found] = np.nan
    return features


def load_split(corpus: Path, prepared: Path, split: str, limit: int | None, subtract_mean: bool,
               speaker: str | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Stacked features and targets of a split's frames with a face (of one ``speaker`` if given), and
    the utterance count."""
    corpus_rows = {r["id"]: r for r in read_jsonl(corpus / f"{split}.jsonl", required=("id", "video"))}
    manifest = prepared / f"{split}.jsonl"
    rows = [r for r in read_jsonl(manifest, required=("id", "features"))
            if r["id"] in corpus_rows and speaker in (None, corpus_rows[r["id"]].get("speaker"))][:limit]
    if not rows:
        raise SystemExit(f"{manifest}: no prepared utterance of {corpus / (split + '.jsonl')}; run avsr prepare "
                         "manifest on it first")
    xs, ys = [], []
    for row in rows:
        side = json.loads((corpus / corpus_rows[row["id"]]["video"]).with_suffix(".json").read_text())
        with np.load(resolve(manifest, row["features"])) as data:
            roi, found = data["roi"], data["face_found"]
        frames = min(len(roi), len(side["mouth_open"]))
        x = utterance_features(roi[:frames], found[:frames], subtract_mean)
        y = np.stack([np.asarray(side[name][:frames], np.float64) for name in TARGETS], axis=1)
        keep = found[:frames]
        if keep.sum() < 2:
            continue
        y = y - y[keep].mean(axis=0)
        xs.append(x[keep])
        ys.append(y[keep])
    return np.concatenate(xs), np.concatenate(ys), len(rows)


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge weights on standardised inputs: ``(mean, scale, W)`` with ``y ~ ((x - mean) / scale) @ W``
    (``W`` holds a bias row)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    penalty = alpha * np.eye(z.shape[1])
    penalty[-1, -1] = 0.0
    return mean, scale, np.linalg.solve(z.T @ z + penalty, z.T @ y)


def predict(model: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    mean, scale, weights = model
    return np.hstack([(x - mean) / scale, np.ones((len(x), 1))]) @ weights


def r2(y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    return 1 - ((y - prediction) ** 2).sum(axis=0) / ((y - y.mean(axis=0)) ** 2).sum(axis=0)


def probe(corpus: str | Path, prepared: str | Path, train_utterances: int = 700,
          subtract_mean: bool = True) -> dict:
    """R² per target on the test speakers, with the chosen ridge strength and the data sizes."""
    corpus, prepared = Path(corpus), Path(prepared)
    train = load_split(corpus, prepared, "train", train_utterances, subtract_mean)
    val = load_split(corpus, prepared, "val", None, subtract_mean)
    test = load_split(corpus, prepared, "test", None, subtract_mean)
    scores = {alpha: r2(val[1], predict(fit_ridge(train[0], train[1], alpha), val[0])).mean()
              for alpha in 10.0 ** np.arange(-1, 7)}
    alpha = max(scores, key=scores.get)
    model = fit_ridge(train[0], train[1], alpha)
    test_r2 = r2(test[1], predict(model, test[0]))
    speakers = sorted({r.get("speaker", "") for r in read_jsonl(corpus / "test.jsonl")} - {""})
    per_speaker = {}
    for speaker in speakers if len(speakers) > 1 else []:
        x, y, _ = load_split(corpus, prepared, "test", None, subtract_mean, speaker)
        per_speaker[speaker] = dict(zip(TARGETS, map(float, r2(y, predict(model, x)))))
        per_speaker[speaker]["pixel_motion"] = float(np.nanstd(x, axis=0).mean())
    return {"r2": dict(zip(TARGETS, map(float, test_r2))), "alpha": alpha, "per_speaker": per_speaker,
            "utterances": {"train": train[2], "val": val[2], "test": test[2]},
            "frames": {"train": len(train[0]), "val": len(val[0]), "test": len(test[0])}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", help="the avsr synth folder (train/val/test.jsonl and side .json files)")
    parser.add_argument("prepared", help="the avsr prepare manifest output folder for the same splits")
    parser.add_argument("--train-utterances", type=int, default=700)
    parser.add_argument("--no-mean", action="store_true", help="keep each utterance's mean image (control)")
    args = parser.parse_args()
    result = probe(args.corpus, args.prepared, args.train_utterances, subtract_mean=not args.no_mean)
    sizes = result["utterances"]
    print(f"pixels -> mouth shape, ridge (alpha {result['alpha']:g}) on {sizes['train']} training utterances, "
          f"scored on {sizes['test']} utterances of unseen test faces ({result['frames']['test']} frames)"
          f"{'' if not args.no_mean else ', utterance mean image kept'}")
    for name, value in result["r2"].items():
        print(f"  R² {name:<13} {value:.3f}")
    for speaker, scores in result["per_speaker"].items():
        print(f"  test speaker {speaker}: " + ", ".join(f"R² {t} {scores[t]:.3f}" for t in TARGETS)
              + f"; pixel motion (std of the mean-free region) {scores['pixel_motion']:.4f}")


if __name__ == "__main__":
    main()
