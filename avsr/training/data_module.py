"""Lightning data module over prepared manifests, batched by total frames."""

from __future__ import annotations

from functools import partial

import lightning as L
from torch.utils.data import DataLoader

from avsr.data.augment import AugmentOptions
from avsr.data.dataset import AVDataset, BucketBatchSampler, collate
from avsr.data.manifest import ManifestError
from avsr.data.tokenizer import CharTokenizer
from avsr.preprocessing import Preprocessing


class AVDataModule(L.LightningDataModule):
    """
    Args:
        train_manifests, val_manifests: prepared manifests (``avsr prepare manifest``).
        max_frames: video frames per batch (padded), which sets the batch size by length.
        augment: training augmentation; validation always uses ``AugmentOptions.evaluation()``.
        num_workers: data-loading processes.
    """

    def __init__(self, train_manifests: list[str], val_manifests: list[str], max_frames: int = 1200,
                 augment: AugmentOptions = AugmentOptions(), num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Lightning keeps hyperparameters as plain dicts (also when reloading): rebuild the dataclass.
        self.augment = AugmentOptions(**augment) if isinstance(augment, dict) else augment

    @property
    def preprocessing(self) -> Preprocessing:
        """The model's preprocessing: the data are prepared as the model being trained says."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        return getattr(module, "preprocessing", Preprocessing())

    @property
    def tokenizer(self):
        """The model's tokenizer: the transcripts become the units its CTC heads emit."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        return getattr(module, "tokenizer", CharTokenizer())

    def setup(self, stage: str | None = None) -> None:
        h, spec = self.hparams, self.preprocessing
        tokenizer = self.tokenizer
        self.train_set = AVDataset(h.train_manifests, tokenizer, augment=self.augment, seed=h.seed, preprocessing=spec)
        self.val_set = AVDataset(h.val_manifests, tokenizer, preprocessing=spec)
        for name, dataset, manifests in (("train", self.train_set, h.train_manifests),
                                         ("val", self.val_set, h.val_manifests)):
            if len(dataset) == 0:
                raise ManifestError(f"{', '.join(map(str, manifests))}: the {name} manifest(s) hold no utterance; "
                                    f"point data.{name}_manifests at prepared manifests with lines")

    def _loader(self, dataset: AVDataset, shuffle: bool) -> DataLoader:
        sampler = BucketBatchSampler(dataset.lengths, self.hparams.max_frames, shuffle=shuffle, seed=self.hparams.seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=partial(collate, preprocessing=self.preprocessing),
                          num_workers=self.hparams.num_workers,
                          persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
