"""Class-aware (class-balanced) sampling that is correct under DDP.

Class-aware sampling (Shen et al., 2016), as the decoupling literature uses
it to re-train classifiers (Kang et al., 2020; cRT), draws every class
equally often whatever its size. The exact scheme here, one epoch at a time:

1. Classes are visited in rounds. Each round is a fresh random permutation
   of the K classes that have images, so a class is picked uniformly and,
   over an epoch, every class is picked the same number of times (+-1 for
   an unfinished last round).
2. Each pick takes the next ``samples_per_pick`` images of that class from
   its own stream: a random permutation of the class's images, followed by
   a new permutation whenever it runs out (so an image recurs only after
   all images of its class were drawn).
3. An epoch has ``num_samples_per_class * K`` positions (rounded up to a
   multiple of the world size W). The full index list is generated
   identically on every rank from ``(seed, epoch)``, cut into W equal
   contiguous pieces, and rank r takes piece r: the shares are disjoint in
   position, equally long, and together exactly the epoch's list.
   Contiguous pieces (rather than mmengine's DefaultSampler's every W-th
   position) keep each rank's share balanced too: it is a run of whole
   rounds plus two partial ones, so its class counts differ by at most 2
   (with ``samples_per_pick=1``). Every training step's global batch, the
   ranks' batches together, is a set of such runs as well.

Unlike the decoupling code, whose per-class iterators carry over between
epochs, every epoch here starts from fresh permutations: an epoch's order
depends only on ``(seed, epoch)``, which keeps ranks in step and makes a
resumed run draw what the uninterrupted one would have.
"""

import math
from typing import Iterator, List, Optional, Sized

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from .utils import dataset_labels, dataset_num_classes

__all__ = ['ClassAwareSampler']


@DATA_SAMPLERS.register_module()
class ClassAwareSampler(Sampler):
    """Class-balanced sampling with disjoint per-rank shares (module doc).

    Args:
        dataset: a single-label dataset (``get_gt_labels()`` or
            ``get_cat_ids()``), e.g. a :class:`LongTailDataset` or a split
            reader.
        num_samples_per_class: picks of each class per epoch. Defaults to
            n_max, the largest class count, as in the decoupling code (an
            epoch of n_max * K samples: 1.28M for ImageNet-LT, 11 times the
            dataset); ``ceil(len(dataset) / K)`` keeps the epoch about one
            dataset long.
        samples_per_pick: images taken from a class each time it is picked
            (the decoupling code's ``num_samples_cls``; it used 4 on
            ImageNet-LT). Default 1.
        shuffle: if False, rounds visit the classes in index order and each
            class's stream is its images in dataset order (every epoch the
            same; for debugging).
        seed: shared by all ranks; None takes mmengine's
            ``sync_random_seed()`` (rank 0's random seed, broadcast).
        round_up: pad the epoch with further draws to a multiple of the
            world size (default); if False, drop the remainder instead.
            Either way every rank gets the same number of indices.
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
        self.seed = sync_random_seed() if seed is None else int(seed)
        if self.seed < 0:
            raise ValueError(f'seed must be >= 0, got {seed}')
        self.epoch = 0
        if int(samples_per_pick) != samples_per_pick or samples_per_pick < 1:
            raise ValueError(
                f'samples_per_pick must be an integer >= 1, got '
                f'{samples_per_pick!r}'
            )
        self.samples_per_pick = int(samples_per_pick)

        labels = dataset_labels(dataset)
        if labels.size == 0:
            raise ValueError('ClassAwareSampler: the dataset is empty')
        num_classes = max(
            dataset_num_classes(dataset, labels), int(labels.max()) + 1
        )
        counts = np.bincount(labels, minlength=num_classes)
        self.classes = np.flatnonzero(counts)  # classes that have images
        by_class = np.argsort(labels, kind='stable')
        bounds = np.concatenate([[0], np.cumsum(counts)])
        self._members: List[np.ndarray] = [
            by_class[bounds[c] : bounds[c + 1]] for c in self.classes
        ]
        if len(self.classes) < num_classes:
            empty = np.flatnonzero(counts == 0).tolist()
            print_log(
                f'ClassAwareSampler: {len(empty)} of {num_classes} classes '
                f'have no image and are never drawn (e.g. {empty[:5]}).',
                logger='current',
            )

        if num_samples_per_class is None:
            num_samples_per_class = int(counts.max())
        if (
            int(num_samples_per_class) != num_samples_per_class
            or num_samples_per_class < 1
        ):
            raise ValueError(
                'num_samples_per_class must be an integer >= 1 or None, '
                f'got {num_samples_per_class!r}'
            )
        self.num_samples_per_class = int(num_samples_per_class)
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
