"""The streaming statistics pass (docs/method.md stage two item 3).

:class:`StatisticsBuilder` streams the (Tukey-transformed) training
features of one pass, each rank its own share, to a temporary spill file of
that rank (unlinked at once: nothing is left behind by a killed run),
keeping only their labels and dataset indices in memory.
:meth:`~StatisticsBuilder.finalize` gathers those, orders the rows by
(label, dataset index) so the result does not depend on the sharding, and
drops DistributedSampler's padded repeats; then, one group of classes at a
time (about ``_ROUND_BYTES`` of rows, or one larger class), it all-gathers
the group's rows from every rank's spill file, centres each class on its
mean and hands it to :meth:`~glag_mm.core.ClassStatistics.
from_class_blocks`, which writes its bounded covariance factor and anchors
into the output rows (with ``scratch``: a memory-mapped temporary file).

Private memory of the pass with ``scratch``: one group of rows (a few
copies, for the gather and the centring; the spill file is read, never
mapped), the C x D means, O(N) integers and the support sets' blocks of
:class:`~glag_mm.core.ClassStatistics`: bounded by the largest class, not
N x D, and not multiplied by the number of ranks
(``benchmarks/statistics_pass_memory.py``).
"""

import os
import tempfile
from typing import Callable, Iterator, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch import Tensor

from .checks import check_integer
from .class_statistics import ClassStatistics

#: ``all_gather(tensor) -> [tensor from rank 0, rank 1, ...]``; every rank
#: passes a tensor of the same shape and dtype (``mmengine.dist.all_gather``
#: has this contract).
AllGather = Callable[[Tensor], List[Tensor]]

_ROUND_BYTES = 16 * 2**20  # rows of one group of classes in finalize


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
            (float32 default; float16 halves the spill file at ~1e-3
            relative precision of the statistics).
        device: where a group's rows and the statistics are computed
            (default CPU).
        scratch: folder of the temporary files (the spill file and, when
            given, the memory-mapped output rows); None: the system's
            temporary folder for the spill file and the output rows in
            memory on ``device``.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        dtype: torch.dtype = torch.float32,
        device: Union[str, torch.device, None] = None,
        scratch: Optional[str] = None,
    ) -> None:
        self.num_classes = check_integer(
            'num_classes', num_classes, at_least=1
        )
        self.dim = check_integer('dim', dim, at_least=1)
        self.dtype = dtype
        self.device = torch.device('cpu' if device is None else device)
        self.scratch = scratch
        if scratch is not None:
            os.makedirs(scratch, exist_ok=True)
        # this rank's rows, in the order added, as raw ``dtype`` bytes
        self._spill = tempfile.TemporaryFile(dir=scratch)
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
        rows = features.detach().to('cpu', self.dtype).contiguous()
        self._spill.write(rows.view(torch.uint8).numpy())
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
        keep: bool = True,
    ) -> Optional[ClassStatistics]:
        """Gather, order, centre; return the finished statistics (once).

        ``tail_mask``: (C,) bool, the classes calibrated from donors (their
        real rows kept as anchors), or a function of the gathered (C,)
        counts returning it; None: no tail class. ``num_donors``,
        ``weighting``, ``exact_rows``, ``rank``: see
        :meth:`ClassStatistics.from_class_blocks`. ``all_gather``: an
        :data:`AllGather` (e.g. ``mmengine.dist.all_gather``); None:
        ``torch.distributed`` when it runs with over one process; False:
        local. ``keep=False``: this rank only sends its rows (another
        process writes the statistics) and None is returned.
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
        labels = [p[0] for p in parts]
        indices = torch.cat([p[1] for p in parts])
        del padded, parts
        dest, row_labels = self._destinations(torch.cat(labels), indices)
        del indices
        counts = torch.bincount(row_labels, minlength=self.num_classes)
        del row_labels
        if tail_mask is None:
            tail_mask = torch.zeros(self.num_classes, dtype=torch.bool)
        elif callable(tail_mask):
            tail_mask = tail_mask(counts.cpu())
        blocks = self._class_blocks(local[0], labels, dest, counts, gather)
        try:
            if not keep:
                for _ in blocks:
                    pass
                return None
            return ClassStatistics.from_class_blocks(
                counts,
                blocks,
                tail_mask,
                num_donors=num_donors,
                weighting=weighting,
                exact_rows=exact_rows,
                rank=rank,
                out_rows=None if self.scratch is None else self._out_rows,
            )
        finally:
            blocks.close()
            self._spill.close()

    def _out_rows(self, num: int, dim: int) -> Tensor:
        """(num, dim) float32 zeros memory-mapped from an unlinked file."""
        if num == 0:
            return torch.empty(0, dim)
        fd, path = tempfile.mkstemp(dir=self.scratch, suffix='.rows.tmp')
        try:
            os.ftruncate(fd, num * dim * 4)
            out = torch.from_file(path, True, num * dim, dtype=torch.float32)
        finally:
            os.close(fd)
            os.remove(path)
        return out.view(num, dim)

    def _class_blocks(
        self, mine: Tensor, labels: List[Tensor], dest: Tensor, counts, gather
    ) -> Iterator[Tuple[Tensor, Tensor]]:
        """(mu_c, centred rows) of each class in order, read one group of
        classes at a time from every rank's spill file; ``mine``: this
        rank's labels, ``labels``: every rank's, ``dest``: each gathered
        row's place in (label, index) order (-1: a dropped repeat)."""
        dev, dim = self.device, self.dim
        acc = torch.float64 if dev.type != 'mps' else torch.float32
        self._spill.flush()
        sizes = [len(lab) for lab in labels]
        starts = [sum(sizes[:r]) for r in range(len(sizes))]
        budget = max(1, _ROUND_BYTES // (dim * 4))
        ends = torch.cumsum(counts.cpu(), 0).tolist()
        first = 0
        while first < self.num_classes:
            a = ends[first - 1] if first else 0
            last = first + 1
            while last < self.num_classes and ends[last] - a <= budget:
                last += 1
            block = self._gather_group(
                mine,
                labels,
                dest,
                starts,
                (first, last, a, ends[last - 1]),
                gather,
            )
            for c in range(first, last):
                lo = (ends[c - 1] if c else 0) - a
                x = block[lo : ends[c] - a]
                sums = torch.zeros(1, dim, dtype=acc, device=dev)
                index = torch.zeros(len(x), dtype=torch.long, device=dev)
                sums.index_add_(0, index, x.to(acc))
                mean = (sums[0] / max(len(x), 1)).float()
                yield mean, x.float() - mean
            first = last

    def _read_rows(self, sel: Tensor) -> Tensor:
        """Rows ``sel`` of this rank's spill file, read into
        memory (not mapped: no page of the file joins this process)."""
        width = self.dim * torch.empty(0, dtype=self.dtype).element_size()
        out = torch.empty(len(sel), self.dim, dtype=self.dtype)
        if not len(sel):
            return out
        view = memoryview(out.view(torch.uint8).numpy()).cast('B')
        fd = self._spill.fileno()
        for k, i in enumerate(sel.tolist()):
            os.preadv(fd, [view[k * width : (k + 1) * width]], i * width)
        return out

    def _gather_group(
        self, mine, labels, dest, starts, group, gather
    ) -> Tensor:
        """Rows ``a:b`` (classes ``first:last``) in (label, index) order:
        each rank sends its rows of those classes, as bytes (bit-exact on
        any backend), padded to the most any rank sends."""
        first, last, a, b = group
        dev = self.device
        out = torch.empty(b - a, self.dim, dtype=self.dtype, device=dev)
        picks = [
            torch.nonzero((lab >= first) & (lab < last)).flatten()
            for lab in labels
        ]
        width = max(len(p) for p in picks)
        if width == 0:  # only empty classes: every rank skips alike
            return out
        sel = torch.nonzero((mine >= first) & (mine < last)).flatten().cpu()
        send = torch.zeros(width, self.dim, dtype=self.dtype, device=dev)
        send[: len(sel)] = self._read_rows(sel).to(dev)
        parts = gather(send.view(torch.uint8))
        for r, (part, pick) in enumerate(zip(parts, picks)):
            d = dest[starts[r] + pick]
            keep = d >= 0
            part = part.to(dev).view(self.dtype)[: len(pick)]
            out.index_copy_(0, d[keep] - a, part[keep])
        return out

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
