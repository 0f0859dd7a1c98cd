"""The streaming statistics pass (docs/method.md stage two item 3).

:class:`StatisticsBuilder` collects the (Tukey-transformed) training
features of one pass, each rank its own share; :meth:`~StatisticsBuilder.
finalize` gathers them, orders them by (label, dataset index) so the result
does not depend on the sharding, drops DistributedSampler's padded repeats,
centres them, and returns :class:`~glag_mm.core.ClassStatistics` (bounded
covariance factors, read-only), freeing its buffers as it goes.
"""

from typing import Callable, List, Union

import torch
import torch.distributed as dist
from torch import Tensor

from .checks import check_integer
from .class_statistics import ClassStatistics

#: ``all_gather(tensor) -> [tensor from rank 0, rank 1, ...]``; every rank
#: passes a tensor of the same shape and dtype (``mmengine.dist.all_gather``
#: has this contract).
AllGather = Callable[[Tensor], List[Tensor]]

_ROUND_BYTES = 16 * 2**20  # rows sent per rank in one all_gather round
_WORK_BYTES = 16 * 2**20  # temporaries of the mean / centring passes


def _torch_all_gather(tensor: Tensor) -> List[Tensor]:
    """All-gather through ``torch.distributed`` (gloo on CPU, NCCL on GPU)."""
    if dist.get_backend() == 'nccl':
        device = torch.device('cuda', torch.cuda.current_device())
    else:
        device = torch.device('cpu')
    send = tensor.to(device).contiguous()
    out = [torch.empty_like(send) for _ in range(dist.get_world_size())]
    dist.all_gather(out, send)
    return [t.to(tensor.device) for t in out]


class StatisticsBuilder:
    """Streaming pass over the training features; DDP-reduced finalize.

    Args:
        num_classes: C.
        dim: D, the feature dimension.
        dtype: storage of the streamed rows until :meth:`finalize`
            (float32 default; float16 halves the pass's memory at ~1e-3
            relative precision of the statistics).
        device: where rows and statistics live (default CPU).
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        dtype: torch.dtype = torch.float32,
        device: Union[str, torch.device, None] = None,
    ) -> None:
        self.num_classes = check_integer(
            'num_classes', num_classes, at_least=1
        )
        self.dim = check_integer('dim', dim, at_least=1)
        self.dtype = dtype
        self.device = torch.device('cpu' if device is None else device)
        # this rank's batches, as added (rows in ``dtype``)
        self._rows: List[Tensor] = []
        self._labels: List[Tensor] = []
        self._indices: List[Tensor] = []

    def add(self, features: Tensor, labels: Tensor, indices: Tensor) -> None:
        """Append one batch of (already Tukey-transformed) features.

        Args:
            features: (B, D) features of B training samples.
            labels: (B,) class ids in [0, C).
            indices: (B,) dataset indices; they fix the row order across
                any sharding and let :meth:`finalize` drop
                DistributedSampler's padded repeats.
        """
        labels = torch.as_tensor(labels).reshape(-1).to(self.device).long()
        indices = torch.as_tensor(indices).reshape(-1).to(self.device).long()
        num = labels.numel()
        if features.shape != (num, self.dim) or indices.numel() != num:
            raise ValueError(
                f'features {tuple(features.shape)}, {num} labels and '
                f'{indices.numel()} indices do not fit (B, {self.dim}), (B,) '
                'and (B,)'
            )
        if num and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f'labels must lie in [0, {self.num_classes}), got '
                f'[{int(labels.min())}, {int(labels.max())}]'
            )
        self._rows.append(
            features.detach().to(self.device, self.dtype, copy=True)
        )
        self._labels.append(labels)
        self._indices.append(indices)

    def finalize(
        self,
        tail_mask: Union[Tensor, Callable[[Tensor], Tensor], None] = None,
        num_donors: int = 3,
        weighting: str = 'count_distance',
        exact_rows: int = 32,
        rank: int = 32,
        all_gather: Union[AllGather, None, bool] = None,
    ) -> ClassStatistics:
        """Gather, order, centre; return the finished statistics (once).

        ``tail_mask``: (C,) bool, the classes calibrated from donors (their
        real rows kept as anchors), or a function of the gathered (C,)
        counts returning it; None: no tail class. ``num_donors``,
        ``weighting``, ``exact_rows``, ``rank``: see
        :meth:`ClassStatistics.from_centred_rows`. ``all_gather``: an
        :data:`AllGather` (e.g. ``mmengine.dist.all_gather``); None:
        ``torch.distributed`` when it runs with over one process; False:
        local.
        """
        if all_gather is None and (
            dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            all_gather = _torch_all_gather
        gather = all_gather or (lambda tensor: [tensor])
        dev = self.device
        none = [torch.empty(0, dtype=torch.long, device=dev)]
        local = torch.cat(self._labels + none), torch.cat(self._indices + none)
        self._labels, self._indices = [], []
        # every rank's row count, then (labels, indices) padded to the most
        sizes = [
            int(n) for n in gather(torch.tensor([len(local[0])], device=dev))
        ]
        if sum(sizes) == 0:
            raise ValueError(
                'no features were added; run the statistics pass (add()) '
                'before finalize()'
            )
        padded = torch.full((2, max(sizes)), -1, device=dev)
        padded[:, : len(local[0])] = torch.stack(local)
        parts = [p.to(dev)[:, :n] for p, n in zip(gather(padded), sizes)]
        dest, row_labels = self._destinations(*torch.cat(parts, 1))
        del local, padded, parts
        rows = torch.empty(
            len(row_labels), self.dim, dtype=self.dtype, device=dev
        )
        self._scatter(rows, dest, sizes, gather)
        del dest

        counts = torch.bincount(row_labels, minlength=self.num_classes)
        acc = torch.float64 if dev.type != 'mps' else torch.float32
        sums = torch.zeros(self.num_classes, self.dim, dtype=acc, device=dev)
        step = max(1, _WORK_BYTES // (self.dim * 8))
        for a in range(0, len(rows), step):
            part = rows[a : a + step].to(acc)
            sums.index_add_(0, row_labels[a : a + step], part)
        means = (sums / counts.clamp(min=1).to(acc)[:, None]).float()
        rows = rows.float()
        for a in range(0, len(rows), step):  # centre in place
            rows[a : a + step] -= means[row_labels[a : a + step]]
        if tail_mask is None:
            tail_mask = torch.zeros(self.num_classes, dtype=torch.bool)
        elif callable(tail_mask):
            tail_mask = tail_mask(counts.cpu())
        return ClassStatistics.from_centred_rows(
            counts,
            means,
            rows,
            tail_mask,
            num_donors=num_donors,
            weighting=weighting,
            exact_rows=exact_rows,
            rank=rank,
        )

    @staticmethod
    def _destinations(labels: Tensor, idx: Tensor):
        """Target row of each gathered row (-1: dropped repeat) and labels;
        rows sort by (label, dataset index)."""
        total, dev = labels.numel(), labels.device
        order = torch.argsort(idx, stable=True)
        s_idx, s_lab = idx[order], labels[order]
        repeat = torch.zeros(total, dtype=torch.bool, device=dev)
        repeat[1:] = s_idx[1:] == s_idx[:-1]
        clash = repeat[1:] & (s_lab[1:] != s_lab[:-1])
        if bool(clash.any()):
            raise ValueError(
                f'dataset index {int(s_idx[1:][clash][0])} was added with '
                'two different labels; indices must identify samples uniquely'
            )
        order = order[~repeat]
        order = order[torch.argsort(labels[order], stable=True)]
        dest = torch.full((total,), -1, dtype=torch.long, device=dev)
        dest[order] = torch.arange(order.numel(), device=dev)
        return dest, labels[order]

    def _scatter(self, rows, dest, sizes, gather) -> None:
        """Every rank's rows to row ``dest`` (-1: dropped), sent in rounds
        of ``_ROUND_BYTES`` as bytes (bit-exact on any backend); the local
        batches are freed as they are sent (peak ~ one copy)."""
        step = max(1, _ROUND_BYTES // (self.dim * rows.element_size()))
        starts = [sum(sizes[:r]) for r in range(len(sizes))]
        pending, self._rows = self._rows, []
        for a in range(0, max(sizes), step):
            send = torch.zeros(
                step, self.dim, dtype=self.dtype, device=self.device
            )
            fill = 0
            while pending and fill < step:
                take = min(step - fill, len(pending[0]))
                send[fill : fill + take] = pending[0][:take]
                pending[0] = pending[0][take:]
                if not len(pending[0]):
                    pending.pop(0)
                fill += take
            for r, part in enumerate(gather(send.view(torch.uint8))):
                valid = min(step, max(0, sizes[r] - a))
                d = dest[starts[r] + a : starts[r] + a + valid]
                part = part.to(self.device).view(self.dtype)[:valid]
                rows.index_copy_(0, d[d >= 0], part[d >= 0])
