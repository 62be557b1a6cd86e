"""The training/evaluation dataset over prepared manifests, length bucketing, and collation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from avsr.errors import AvsrError, OptionError
from avsr.data.augment import Augmenter, AugmentOptions
from avsr.data.manifest import check_texts, read_jsonl, resolve
from avsr.data.noise import babble_talkers
from avsr.data.tokenizer import CharTokenizer
from avsr.preprocessing import Preprocessing


class FeatureFileError(AvsrError, ValueError):
    """A prepared feature file that cannot be read."""


def load_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``roi (T, 96, 96) uint8``, ``face_found (T,) bool``, ``audio (640 T,) float32`` of a prepared utterance.

    Raises:
        FeatureFileError: the file is missing or damaged; the message names it and the fix.
    """
    try:
        with np.load(path) as data:
            return data["roi"], data["face_found"], data["audio"].astype(np.float32) / 32768.0
    except FileNotFoundError:
        raise FeatureFileError(f"{path}: feature file not found; run avsr prepare manifest again") from None
    except Exception as error:  # zipfile.BadZipFile, EOFError, KeyError, ValueError, zlib.error ...
        raise FeatureFileError(f"{path}: damaged feature file ({error.__class__.__name__}); rebuild it with avsr "
                               "prepare manifest (a damaged file is recomputed)") from None


class AVDataset(Dataset):
    """Utterances of one or more prepared manifests (``avsr prepare manifest``).

    Items: ``dict(id, video (T, crop, crop) uint8, face_found (T,), audio (samples_per_frame T,), frame_snr (T,),
    av_offset, tokens (L,))`` (``frame_snr``: each frame's SNR in dB under the mixed-in noise, see
    :func:`~avsr.data.augment.frame_snr_db`; ``av_offset``: the frames the video was moved later),
    cropped as ``preprocessing`` says (at random when augmenting). ``normalise_text``: texts are normalised as
    ``avsr prepare`` does (for scoring a manifest whose text was not); either way a line whose text is empty,
    or has characters the tokenizer cannot encode, is refused with its ``file:line`` when the set is made.
    """

    def __init__(self, manifests: str | list[str], tokenizer: CharTokenizer = CharTokenizer(),
                 augment: AugmentOptions | None = None, seed: int = 0,
                 preprocessing: Preprocessing = Preprocessing(), normalise_text: bool = False) -> None:
        manifests = [manifests] if isinstance(manifests, (str, Path)) else manifests
        self.records = []
        for manifest in manifests:
            records = read_jsonl(manifest, required=("id", "text", "features", "num_frames"))
            # Every line's text is checked here, when the data is set up, not met hours into a run.
            texts = check_texts(manifest, records, getattr(tokenizer, "characters", None), normalise_text)
            self.records += [r | {"features": str(resolve(manifest, r["features"])), "text": text}
                             for r, text in zip(records, texts)]
        self.tokenizer = tokenizer
        self.augment = Augmenter(augment or AugmentOptions.evaluation(), preprocessing)
        # Babble is drawn from other speakers' utterances; without a speaker field each utterance is its own.
        self.speakers = [str(r.get("speaker", r["id"])) for r in self.records]
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    @property
    def lengths(self) -> list[int]:
        return [int(r["num_frames"]) for r in self.records]

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """``key``: an index, or ``(index, epoch)`` as :class:`BucketBatchSampler` yields, which seeds
        the augmentation per epoch (also inside data-loading worker processes)."""
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        video, face_found, audio = load_features(record["features"])
        others = []
        if self.augment.options.noise_prob > 0 and "babble" in self.augment.options.noise_types:
            picks = babble_talkers(index, self.speakers, self.augment.options.babble_speakers, rng)
            others = [load_features(self.records[i]["features"])[2] for i in picks]
        video, face_found, audio, frame_snr, av_offset = self.augment(video, face_found, audio, rng, others)
        return {"id": record["id"], "text": record["text"], "video": video, "face_found": face_found,
                "audio": audio, "frame_snr": frame_snr, "av_offset": av_offset,
                "tokens": torch.tensor(self.tokenizer.encode(record["text"]), dtype=torch.long)}


@dataclass
class Batch:
    """Padded tensors with their lengths: audio ``(B, N)``, video ``(B, T, H, W)`` (normalised),
    face_found ``(B, T)``, targets ``(B, L)`` (0-padded), frame_snr ``(B, T)`` (each frame's SNR
    in dB under the noise the augmentation mixed in; NaN where unknown and in the padding) and
    av_offset ``(B,)`` (frames the augmentation moved each video later against its audio)."""

    ids: list[str]
    texts: list[str]
    audio: torch.Tensor
    audio_lengths: torch.Tensor
    video: torch.Tensor
    video_lengths: torch.Tensor
    face_found: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    frame_snr: torch.Tensor | None = None
    av_offset: torch.Tensor | None = None

    def to(self, device, **kwargs) -> "Batch":
        for name in ("audio", "audio_lengths", "video", "video_lengths", "face_found", "targets", "target_lengths",
                     "frame_snr", "av_offset"):
            if getattr(self, name) is None:
                continue
            setattr(self, name, getattr(self, name).to(device, **kwargs))
        return self


def collate(items: list[dict], preprocessing: Preprocessing = Preprocessing()) -> Batch:
    """Pad and normalise dataset items (video as ``preprocessing.normalise_video``)."""
    step = preprocessing.samples_per_frame
    frames = torch.tensor([len(item["video"]) for item in items])
    size = items[0]["video"].shape[1:]
    video = torch.zeros(len(items), int(frames.max()), *size, dtype=torch.uint8)
    face_found = torch.zeros(len(items), int(frames.max()), dtype=torch.bool)
    audio = torch.zeros(len(items), int(frames.max()) * step)
    targets = torch.nn.utils.rnn.pad_sequence([item["tokens"] for item in items], batch_first=True)
    frame_snr = torch.full((len(items), int(frames.max())), float("nan"))
    for i, item in enumerate(items):
        count = len(item["video"])
        video[i, :count] = torch.from_numpy(np.ascontiguousarray(item["video"]))
        face_found[i, :count] = torch.from_numpy(item["face_found"])
        audio[i, : count * step] = torch.from_numpy(item["audio"][: count * step])
        if item.get("frame_snr") is not None:
            snr = torch.from_numpy(item["frame_snr"][:count])
            frame_snr[i, : len(snr)] = snr
    return Batch([item["id"] for item in items], [item["text"] for item in items], audio, frames * step,
                 preprocessing.normalise_video(video, face_found, frames), frames, face_found, targets,
                 torch.tensor([len(item["tokens"]) for item in items]), frame_snr,
                 torch.tensor([item.get("av_offset", 0) for item in items]))


class BucketBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of similar length whose padded frames stay under ``max_frames``; batch order is
    shuffled per epoch (seeded), and so are utterances of equal length. Yields ``(index, epoch)``
    keys; Lightning calls :meth:`set_epoch` at every epoch. Shards itself under DDP (so the
    trainer's ``use_distributed_sampler`` must be off)."""

    def __init__(self, lengths: list[int], max_frames: int, shuffle: bool = True, seed: int = 0) -> None:
        if max(lengths, default=0) > max_frames:
            raise OptionError(f"an utterance has {max(lengths)} frames, more than max_frames={max_frames}; "
                             "raise max_frames")
        self.lengths, self.max_frames, self.shuffle, self.seed = lengths, max_frames, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        jitter = rng.random(len(self.lengths)) if self.shuffle else np.zeros(len(self.lengths))
        order = np.lexsort((jitter, np.asarray(self.lengths)))
        batches, current, longest = [], [], 0
        for index in order:
            longest_if_added = max(longest, self.lengths[index])
            if current and longest_if_added * (len(current) + 1) > self.max_frames:
                batches.append(current)
                current, longest_if_added = [], self.lengths[index]
            current.append(int(index))
            longest = longest_if_added
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        """Under DDP, each process takes every world_size-th batch, and every process must get the
        same number (DDP synchronises buffers in every forward pass). Training drops the remainder;
        evaluation (``shuffle=False``) splits its largest batches until the count divides evenly, so
        that the validation set is scored whole (only if every batch is a single utterance and the
        count still does not divide is one left out)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return batches
        rank, world = dist.get_rank(), dist.get_world_size()
        if not self.shuffle:
            batches = [list(b) for b in batches]
            while len(batches) % world and any(len(b) > 1 for b in batches):
                largest = max(range(len(batches)), key=lambda k: len(batches[k]))
                batch = batches.pop(largest)
                batches[largest:largest] = [batch[: len(batch) // 2], batch[len(batch) // 2:]]
        usable = len(batches) // world * world
        return batches[:usable][rank::world]

    def __iter__(self):
        return iter([[(index, self.epoch) for index in batch] for batch in self._shard(self._batches())])

    def __len__(self) -> int:
        return len(self._shard(self._batches()))
