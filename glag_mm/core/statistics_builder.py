"""The streaming statistics pass of stage two (METHOD.md stage two item 3).

:class:`StatisticsBuilder` collects the (Tukey-transformed) training
features of one pass, each rank its own share; :meth:`~StatisticsBuilder.
finalize` gathers them, orders them by (label, dataset index) so the result
does not depend on the sharding, drops DistributedSampler's padded repeats,
centres them, and returns :class:`~glag_mm.core.ClassStatistics` (bounded
covariance factors, read-only), freeing its buffers as it goes.
"""

from typing import Callable, List, Optional, Union

import torch
from torch import Tensor

from .all_gather import AllGather, resolve_all_gather
from .class_statistics import ClassStatistics

_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_BLOCK_BYTES = 64 * 2**20  # storage grows in blocks of at most this size
_ROUND_BYTES = 16 * 2**20  # rows sent per rank in one all_gather round
_WORK_BYTES = 16 * 2**20  # temporaries of the mean / centring passes


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
        for name, val in (('num_classes', num_classes), ('dim', dim)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f'{name} must be a positive int, got {val!r}')
        if dtype not in _DTYPES:
            raise TypeError(
                'dtype must be torch.float16, bfloat16, float32 or float64, '
                f'got {dtype!r}'
            )
        self.num_classes = num_classes
        self.dim = dim
        self.dtype = dtype
        self.device = torch.device('cpu' if device is None else device)
        self._blocks: List[Optional[Tensor]] = []
        self._block_meta: List[Tensor] = []
        self._block_fill: List[int] = []
        self._has_indices: Optional[bool] = None
        self._num_added = 0
        self.finalized = False

    def add(
        self,
        features: Tensor,
        labels: Tensor,
        indices: Optional[Tensor] = None,
    ) -> None:
        """Append one batch of (already Tukey-transformed) features.

        Args:
            features: (B, D) features of B training samples.
            labels: (B,) class ids in [0, C).
            indices: (B,) dataset indices. Give them on every call or on
                none; they fix the row order across any sharding and let
                :meth:`finalize` drop DistributedSampler's padded repeats.
        """
        if self.finalized:
            raise RuntimeError(
                'this StatisticsBuilder is finalized; start a new one for '
                'a new statistics pass'
            )
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(
                f'features must have shape (B, {self.dim}), got '
                f'{tuple(features.shape)}'
            )
        labels = torch.as_tensor(labels).reshape(-1)
        if labels.numel() != features.shape[0]:
            raise ValueError(
                f'{labels.numel()} labels for {features.shape[0]} features'
            )
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise TypeError('labels must be an integer tensor of class ids')
        has_idx = indices is not None
        if self._has_indices is not None and has_idx != self._has_indices:
            raise ValueError(
                'pass dataset indices on every add() call or on none'
            )
        self._has_indices = has_idx
        if labels.numel() == 0:
            return
        labels = labels.to(self.device, torch.long)
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= self.num_classes:
            raise ValueError(
                f'labels must lie in [0, {self.num_classes}), got [{lo}, {hi}]'
            )
        if has_idx:
            indices = torch.as_tensor(indices).reshape(-1)
            if indices.numel() != labels.numel():
                raise ValueError(
                    f'{indices.numel()} indices for {labels.numel()} labels'
                )
        self._write_rows(features.detach(), labels, indices)

    def _write_rows(
        self, feats: Tensor, labels: Tensor, indices: Optional[Tensor]
    ) -> None:
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        max_rows = max(1, _BLOCK_BYTES // (self.dim * itemsize))
        done = 0
        while done < feats.shape[0]:
            if not self._blocks or self._block_fill[-1] == len(
                self._blocks[-1]
            ):
                last = len(self._blocks[-1]) if self._blocks else 512
                cap = min(max_rows, max(2 * last, feats.shape[0] - done))
                self._blocks.append(
                    torch.empty(
                        cap, self.dim, dtype=self.dtype, device=self.device
                    )
                )
                self._block_meta.append(
                    torch.full(
                        (cap, 2), -1, dtype=torch.long, device=self.device
                    )
                )
                self._block_fill.append(0)
            block, fill = self._blocks[-1], self._block_fill[-1]
            meta = self._block_meta[-1]
            take = min(len(block) - fill, feats.shape[0] - done)
            block[fill : fill + take] = feats[done : done + take]
            meta[fill : fill + take, 0] = labels[done : done + take]
            if indices is not None:
                meta[fill : fill + take, 1] = indices[done : done + take]
            self._block_fill[-1] = fill + take
            done += take
        self._num_added += feats.shape[0]

    # ------------------------------------------------------------------
    # finalize: order, gather, mean, centre, (compress)
    # ------------------------------------------------------------------
    def finalize(
        self,
        tail_mask: Union[Tensor, Callable[[Tensor], Tensor], None] = None,
        num_donors: int = 3,
        weighting: str = 'count_distance',
        exact_rows: int = 32,
        rank: int = 32,
        all_gather: Union[AllGather, None, bool] = None,
    ) -> ClassStatistics:
        """Gather, order, centre; return the finished statistics.

        Args:
            tail_mask: (C,) bool, the classes calibrated from donors (their
                real rows are kept as anchors), or a function of the
                gathered (C,) counts that returns it; None: no tail class.
            num_donors, weighting: k and the donor weighting of the
                support sets, computed once per anchor here.
            exact_rows, rank: covariance bound, see
                :meth:`ClassStatistics.from_centred_rows`.
            all_gather: how to combine ranks. A callable with the contract
                of :data:`AllGather` (e.g. ``mmengine.dist.all_gather``);
                None uses ``torch.distributed`` when it is initialised with
                more than one process (else local); False forces local.
        """
        if self.finalized:
            raise RuntimeError('finalize() was already called')
        gather = resolve_all_gather(all_gather)
        dev = self.device
        meta = torch.cat(
            [m[:fill] for m, fill in zip(self._block_meta, self._block_fill)]
            or [torch.empty(0, 2, dtype=torch.long, device=dev)]
        )
        has_idx = bool(self._has_indices)
        labels, idx = meta[:, 0], (meta[:, 1] if has_idx else None)
        if gather is None:
            sizes, labels_all, idx_all = [labels.numel()], labels, idx
        else:
            sizes, labels_all, idx_all = self._gather_meta(
                gather, labels, idx, has_idx
            )
        if sum(sizes) == 0:
            raise ValueError(
                'no features were added; run the statistics pass (add()) '
                'before finalize()'
            )
        dest, row_labels = self._destinations(labels_all, idx_all)
        rows = torch.empty(
            len(row_labels), self.dim, dtype=self.dtype, device=dev
        )
        if gather is None:
            self._scatter_local(rows, dest)
        else:
            self._scatter_gathered(rows, dest, sizes, gather)
        self._blocks, self._block_meta, self._block_fill = [], [], []
        self.finalized = True
        del meta, labels, idx, dest

        counts = torch.bincount(row_labels, minlength=self.num_classes)
        means = self._class_means(rows, row_labels, counts)
        rows = rows.float()
        self._centre(rows, row_labels, means)
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

    def _gather_meta(self, gather, labels, idx, has_idx):
        dev = self.device
        head = torch.tensor(
            [labels.numel(), int(has_idx), self.num_classes, self.dim],
            device=dev,
        )
        heads = [h.to(dev) for h in gather(head)]
        sizes = [int(h[0]) for h in heads]
        flags = {int(h[1]) for h in heads}
        shapes = {(int(h[2]), int(h[3])) for h in heads}
        if len(shapes) != 1:
            raise ValueError(
                'ranks disagree on (num_classes, dim): '
                f'{sorted(shapes)}; build the bank identically on every rank'
            )
        if len(flags) != 1:
            raise ValueError(
                'some ranks passed dataset indices to add() and others did '
                'not; pass them on every rank or on none'
            )
        width = max(sizes)

        def pad_gather(t: Tensor) -> Tensor:
            padded = torch.full((width,), -1, dtype=torch.long, device=dev)
            padded[: t.numel()] = t
            parts = [p.to(dev) for p in gather(padded)]
            return torch.cat([p[:s] for p, s in zip(parts, sizes)])

        labels_all = pad_gather(labels)
        idx_all = (
            pad_gather(idx if idx is not None else labels) if has_idx else None
        )
        return sizes, labels_all, idx_all

    def _destinations(self, labels: Tensor, idx: Optional[Tensor]):
        """Target row of each gathered row (-1: dropped repeat) and labels.

        Rows sort by (label, dataset index); without indices by (label,
        arrival order), arrival being rank 0's rows, then rank 1's, ...
        """
        total = labels.numel()
        dev = labels.device
        keep = torch.ones(total, dtype=torch.bool, device=dev)
        if idx is not None:
            order = torch.argsort(idx, stable=True)
            s_idx, s_lab = idx[order], labels[order]
            repeat = torch.zeros(total, dtype=torch.bool, device=dev)
            repeat[1:] = s_idx[1:] == s_idx[:-1]
            clash = repeat[1:] & (s_lab[1:] != s_lab[:-1])
            if bool(clash.any()):
                bad = int(s_idx[1:][clash][0])
                raise ValueError(
                    f'dataset index {bad} was added with two different '
                    'labels; indices must identify samples uniquely'
                )
            keep[order[repeat]] = False
            key = idx
        else:
            key = torch.arange(total, device=dev)
        kept = torch.nonzero(keep).flatten()
        by_key = kept[torch.argsort(key[kept], stable=True)]
        order = by_key[torch.argsort(labels[by_key], stable=True)]
        dest = torch.full((total,), -1, dtype=torch.long, device=dev)
        dest[order] = torch.arange(order.numel(), device=dev)
        return dest, labels[order]

    def _scatter_local(self, rows: Tensor, dest: Tensor) -> None:
        start = 0
        for i, fill in enumerate(self._block_fill):
            block = self._blocks[i][:fill]
            d = dest[start : start + fill]
            keep = d >= 0
            if bool(keep.all()):
                rows.index_copy_(0, d, block)
            else:
                rows.index_copy_(0, d[keep], block[keep])
            self._blocks[i] = None  # free as we go: peak ~ one copy
            start += fill

    def _local_rows(self, a: int, b: int) -> Tensor:
        """Local rows [a, b) in arrival order (may span blocks)."""
        parts, start = [], 0
        for block, fill in zip(self._blocks, self._block_fill):
            lo, hi = max(a, start), min(b, start + fill)
            if lo < hi:
                parts.append(block[lo - start : hi - start])
            start += fill
        if not parts:
            return torch.empty(
                0, self.dim, dtype=self.dtype, device=self.device
            )
        return torch.cat(parts)

    def _free_blocks_below(self, b: int) -> None:
        start = 0
        for i, fill in enumerate(self._block_fill):
            if start + fill <= b:
                self._blocks[i] = None
            start += fill

    def _scatter_gathered(self, rows, dest, sizes, gather) -> None:
        itemsize = rows.element_size()
        step = max(1, _ROUND_BYTES // (self.dim * itemsize))
        starts = [sum(sizes[:r]) for r in range(len(sizes))]
        n_local = self._num_added
        for a in range(0, max(sizes), step):
            local = self._local_rows(a, min(a + step, n_local))
            send = torch.zeros(
                step, self.dim, dtype=self.dtype, device=self.device
            )
            send[: len(local)] = local
            received = gather(send.view(torch.uint8))  # bit-exact, any backend
            for r, part in enumerate(received):
                valid = min(step, max(0, sizes[r] - a))
                if valid == 0:
                    continue
                d = dest[starts[r] + a : starts[r] + a + valid]
                part = part.to(self.device).view(self.dtype)[:valid]
                keep = d >= 0
                rows.index_copy_(0, d[keep], part[keep])
            self._free_blocks_below(min(a + step, n_local))

    def _class_means(self, rows, row_labels, counts) -> Tensor:
        acc = torch.float64 if self.device.type != 'mps' else torch.float32
        sums = torch.zeros(
            self.num_classes, self.dim, dtype=acc, device=self.device
        )
        step = max(1, _WORK_BYTES // (self.dim * 8))
        for a in range(0, len(rows), step):
            sums.index_add_(
                0, row_labels[a : a + step], rows[a : a + step].to(acc)
            )
        return (sums / counts.clamp(min=1).to(acc)[:, None]).to(torch.float32)

    def _centre(self, rows, row_labels, means) -> None:
        step = max(1, _WORK_BYTES // (self.dim * 4))
        for a in range(0, len(rows), step):
            blk = rows[a : a + step]
            centred = blk.to(torch.float32) - means[row_labels[a : a + step]]
            blk.copy_(centred)
