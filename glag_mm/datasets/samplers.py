"""Class-aware (class-balanced) sampling that is correct under DDP.

Class-aware sampling (Shen et al., 2016; cRT in Kang et al., 2020) draws
every class equally often. Per epoch, from ``(seed, epoch)`` alone (so
ranks stay in step and a resumed run draws what an uninterrupted one
would; the decoupling code carries its iterators over epochs instead):

1. classes are visited in rounds, each a fresh permutation of the K classes
   with images (every class picked equally often, +-1);
2. a pick takes the next ``samples_per_pick`` images from the class's
   stream of back-to-back permutations of its images;
3. the ``num_samples_per_class * K`` positions (rounded to a multiple of the
   world size W) are cut into W contiguous pieces, rank r taking piece r:
   disjoint, equally long, and each a run of whole rounds, so a rank's
   class counts differ by at most 2 (unlike every W-th position).
"""

import math
from typing import Iterator, Optional, Sized

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from ..core import check_integer
from .utils import labels_and_counts


@DATA_SAMPLERS.register_module()
class ClassAwareSampler(Sampler):
    """Class-balanced sampling with disjoint per-rank shares (module doc).

    ``num_samples_per_class`` defaults to n_max, as the decoupling code (an
    epoch of n_max K: 11 datasets for ImageNet-LT); ``samples_per_pick`` is
    its ``num_samples_cls`` (4 on ImageNet-LT). ``shuffle=False`` visits
    classes and images in index order. ``seed`` None: mmengine's
    ``sync_random_seed()``. ``round_up=False`` drops the remainder instead
    of padding.
    """

    def __init__(
        self,
        dataset: Sized,
        num_samples_per_class: Optional[int] = None,
        samples_per_pick: int = 1,
        shuffle: bool = True,
        seed: Optional[int] = None,
        round_up: bool = True,
    ) -> None:
        rank, world_size = get_dist_info()
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = (
            sync_random_seed()
            if seed is None
            else check_integer(
                'seed', seed, at_least=0, owner=type(self).__name__
            )
        )
        self.epoch = 0
        self.samples_per_pick = check_integer(
            'samples_per_pick', samples_per_pick, at_least=1
        )

        labels, counts = labels_and_counts(dataset, 'ClassAwareSampler')
        if labels.size == 0:
            raise ValueError('ClassAwareSampler: the dataset is empty')
        num_classes = len(counts)
        self.classes = np.flatnonzero(counts)  # classes that have images
        by_class = np.split(
            np.argsort(labels, kind='stable'), np.cumsum(counts)[:-1]
        )
        self._members = [by_class[c] for c in self.classes]
        if len(self.classes) < num_classes:
            empty = np.flatnonzero(counts == 0).tolist()
            print_log(
                f'ClassAwareSampler: {len(empty)} of {num_classes} classes '
                f'have no image and are never drawn (e.g. {empty[:5]}).',
                logger='current',
            )

        if num_samples_per_class is None:
            num_samples_per_class = int(counts.max())
        self.num_samples_per_class = check_integer(
            'num_samples_per_class (or None)',
            num_samples_per_class,
            at_least=1,
        )
        epoch_size = self.num_samples_per_class * len(self.classes)
        if round_up:
            self.total_size = math.ceil(epoch_size / world_size) * world_size
        else:
            self.total_size = epoch_size // world_size * world_size
        if self.total_size == 0:
            raise ValueError(
                f'an epoch of {epoch_size} samples cannot be shared by '
                f'{world_size} ranks with round_up=False; raise '
                'num_samples_per_class or use round_up=True'
            )
        self.num_samples = self.total_size // world_size

    def epoch_indices(self) -> np.ndarray:
        """The whole epoch's index list (identical on every rank)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        num = len(self.classes)
        per_pick = self.samples_per_pick
        num_picks = math.ceil(self.total_size / per_pick)
        rounds = np.tile(
            np.arange(num, dtype=np.int32), (math.ceil(num_picks / num), 1)
        )
        if self.shuffle:
            rounds = rng.permuted(rounds, axis=1)
        picks = rounds.ravel()[:num_picks]
        slot_class = np.repeat(picks, per_pick)[: self.total_size]
        # Fill the positions of each class, in order, from its stream.
        positions = np.argsort(slot_class, kind='stable')
        demand = np.bincount(slot_class, minlength=num)
        out = np.empty(self.total_size, dtype=np.int64)
        start = 0
        for k, members in enumerate(self._members):
            need = int(demand[k])
            if need == 0:
                continue
            cycles = math.ceil(need / len(members))
            if self.shuffle:
                stream = np.concatenate(
                    [rng.permutation(members) for _ in range(cycles)]
                )
            else:
                stream = np.tile(members, cycles)
            out[positions[start : start + need]] = stream[:need]
            start += need
        return out

    def __iter__(self) -> Iterator[int]:
        start = self.rank * self.num_samples
        share = self.epoch_indices()[start : start + self.num_samples]
        return iter(share.tolist())

    def __len__(self) -> int:
        """Indices per rank and epoch."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order :meth:`__iter__` produces."""
        self.epoch = epoch
