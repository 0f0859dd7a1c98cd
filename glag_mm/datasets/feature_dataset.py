"""Pooled trunk features as a dataset: what stage two's loops iterate
once the frozen trunk has run over the images
(:mod:`glag_mm.engine.stage_two_loops`)."""

from typing import Optional

from mmpretrain.structures import DataSample
from torch import Tensor
from torch.utils.data import Dataset


class FeatureTensorDataset(Dataset):
    """Cached pooled features with their labels, in dataset order.

    Item i is ``dict(inputs=features[i], data_samples=DataSample)`` with
    ``gt_label`` and ``sample_idx`` set, which mmengine's
    ``default_collate`` batches the way mmpretrain's collate batches images.

    Args:
        features: (N, D) pooled features f.
        labels: (N,) class indices.
        metainfo: the source dataset's metainfo (classes, class_counts).
    """

    def __init__(
        self, features: Tensor, labels: Tensor, metainfo: Optional[dict]
    ) -> None:
        if features.ndim != 2 or labels.shape != features.shape[:1]:
            raise ValueError(
                'FeatureTensorDataset: features must be (N, D) and labels '
                f'(N,), got {tuple(features.shape)} and '
                f'{tuple(labels.shape)}'
            )
        self.features = features
        self.labels = labels.long()
        self.metainfo = dict(metainfo or {})

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, idx: int) -> dict:
        sample = DataSample(metainfo=dict(sample_idx=int(idx)))
        sample.set_gt_label(self.labels[idx].view(1))
        return dict(inputs=self.features[idx], data_samples=sample)

    def get_gt_labels(self):
        return self.labels.numpy()
