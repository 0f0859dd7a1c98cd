"""Streaming class statistics and factorised Gaussian sampling.

METHOD.md, stage two items 3 and 5, and "Memory". For every class c the bank
keeps the mean mu_c of its (Tukey-transformed) training features and its
centred rows A_c = X_c - mu_c (n_c x D), so that the unbiased covariance is

    Sigma_c = A_c^T A_c / (n_c - 1)

without ever forming a D x D matrix. A draw from N(0, Sigma_c) is
A_c^T z / sqrt(n_c - 1) with z ~ N(0, I_{n_c}) (exact, not an
approximation), and a draw from the calibrated mixture
N(m, sum_i w_i Sigma_i + alpha I) is

    m + sum_i sqrt(w_i) A_i^T z_i / sqrt(n_i - 1) + sqrt(alpha) eps.

Memory is N x D in ``dtype`` (float16 by default: 0.47 GiB for ImageNet-LT at
D = 2048, 1.7 GiB for iNaturalist 2018). ``rank=r`` bounds it further [ours]:
a class with n_c - 1 > r keeps only its top-r principal directions plus an
isotropic residual (probabilistic PCA), Sigma_c ~= F_c^T F_c + s_c^2 I with
F_c = diag(sqrt(lam_j - s_c^2)) V_r^T and s_c^2 the mean of the discarded
eigenvalues, which preserves the trace. Compressed classes no longer hold
real rows, so they cannot provide anchors: choose r >= the tail threshold.

Classes with a single feature have no covariance [ours]. They may be anchors
(tail classes, calibrated from donors with more images, so a one-image class
is never a donor) but sampling from their own statistics or using them as a
donor raises a ``ValueError`` that says what to change.

Under DDP every rank calls :meth:`ClassFeatureBank.add` on its shard and
:meth:`ClassFeatureBank.finalize` gathers all rows, so every rank ends with
identical statistics. Rows are ordered by (label, dataset index) when
indices are given, which makes the result independent of the sharding;
duplicate indices (DistributedSampler pads the last round) are dropped.
"""

from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ['ClassFeatureBank', 'AllGather']

#: ``all_gather(tensor) -> [tensor from rank 0, rank 1, ...]``; every rank
#: passes a tensor of the same shape and dtype (``mmengine.dist.all_gather``
#: has this contract).
AllGather = Callable[[Tensor], List[Tensor]]

_BLOCK_BYTES = 64 * 2**20  # storage grows in blocks of at most this size
_ROUND_BYTES = 16 * 2**20  # rows sent per rank in one all_gather round
_WORK_BYTES = 16 * 2**20  # temporaries of the mean / centring passes
_STATE_KEYS = (
    'counts',
    'means',
    'offsets',
    'rows',
    'row_scale',
    'residual_var',
    'exact',
)


def _torch_all_gather(tensor: Tensor) -> List[Tensor]:
    """All-gather through ``torch.distributed`` (gloo on CPU, NCCL on GPU)."""
    world = dist.get_world_size()
    if dist.get_backend() == 'nccl':
        device = torch.device('cuda', torch.cuda.current_device())
    else:
        device = torch.device('cpu')
    send = tensor.to(device).contiguous()
    out = [torch.empty_like(send) for _ in range(world)]
    dist.all_gather(out, send)
    return [t.to(tensor.device) for t in out]


class ClassFeatureBank:
    """Per-class means and covariance factors of training features.

    Args:
        num_classes: C.
        dim: D, the feature dimension.
        dtype: storage type of the centred rows (float16, bfloat16,
            float32 or float64). Means are always float32.
        rank: keep at most ``rank`` principal directions (plus an isotropic
            residual) per class; None keeps every row (exact).
        device: where rows, statistics and samples live (default CPU).

    Example:
        >>> bank = ClassFeatureBank(10, 64)
        >>> for feats, labels, idx in loader:  # Tukey-transformed features
        ...     bank.add(feats, labels, idx)
        >>> bank.finalize()
        >>> x = bank.sample_class(torch.tensor([3, 3, 7]))
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        dtype: torch.dtype = torch.float16,
        rank: Optional[int] = None,
        device: Union[str, torch.device, None] = None,
    ) -> None:
        for name, val in (('num_classes', num_classes), ('dim', dim)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f'{name} must be a positive int, got {val!r}')
        if dtype not in (
            torch.float16,
            torch.bfloat16,
            torch.float32,
            torch.float64,
        ):
            raise TypeError(
                'dtype must be torch.float16, bfloat16, float32 or float64, '
                f'got {dtype!r}'
            )
        if rank is not None and (
            isinstance(rank, bool) or not isinstance(rank, int) or rank < 1
        ):
            raise ValueError(
                f'rank must be None (exact) or a positive int, got {rank!r}'
            )
        self.num_classes = num_classes
        self.dim = dim
        self.dtype = dtype
        self.rank = rank
        self.device = torch.device('cpu' if device is None else device)
        self.reset()

    # ------------------------------------------------------------------
    # streaming pass
    # ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything (added rows and finalized statistics)."""
        # rows in arrival order, in blocks allocated up front together with
        # their (label, index) pairs: no small long-lived tensor per batch,
        # which would fragment the heap between large temporaries
        self._blocks: List[Optional[Tensor]] = []
        self._block_meta: List[Tensor] = []
        self._block_fill: List[int] = []
        self._has_indices: Optional[bool] = None
        self._num_added = 0
        self.finalized = False
        self.counts: Optional[Tensor] = None
        self.means: Optional[Tensor] = None
        self.offsets: Optional[Tensor] = None
        self.rows: Optional[Tensor] = None
        self.row_scale: Optional[Tensor] = None
        self.residual_var: Optional[Tensor] = None
        self.exact: Optional[Tensor] = None

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
                'this ClassFeatureBank is finalized; call reset() before '
                'adding a new statistics pass'
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
        self, all_gather: Union[AllGather, None, bool] = None
    ) -> 'ClassFeatureBank':
        """Compute counts, means and centred rows from everything added.

        Args:
            all_gather: how to combine ranks. A callable with the contract
                of :data:`AllGather` (e.g. ``mmengine.dist.all_gather``);
                None uses ``torch.distributed`` when it is initialised with
                more than one process (else local); False forces local.

        Returns:
            self, with ``counts`` (C,) int64, ``means`` (C, D) float32,
            ``offsets`` (C + 1,) int64, ``rows`` (R, D) in ``dtype`` (class
            c's factor is ``rows[offsets[c]:offsets[c + 1]]``), ``row_scale``
            (C,) (1 / (n_c - 1) for exact rows, 1 for rank factors, 0 when
            n_c < 2), ``residual_var`` (C,) and ``exact`` (C,) bool.
        """
        if self.finalized:
            raise RuntimeError('finalize() was already called; reset() first')
        gather = self._resolve_gather(all_gather)
        dev = self.device
        meta = torch.cat(
            [m[:fill] for m, fill in zip(self._block_meta, self._block_fill)]
            or [torch.empty(0, 2, dtype=torch.long, device=dev)]
        )
        has_idx = bool(self._has_indices)
        labels, idx = meta[:, 0], (meta[:, 1] if has_idx else None)
        n_local = labels.numel()
        if gather is None:
            sizes, labels_all, idx_all = [n_local], labels, idx
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
        del meta, labels, idx

        counts = torch.bincount(row_labels, minlength=self.num_classes)
        offsets = torch.zeros(
            self.num_classes + 1, dtype=torch.long, device=dev
        )
        offsets[1:] = torch.cumsum(counts, 0)
        means = self._class_means(rows, row_labels, counts)
        self._centre(rows, row_labels, means)
        n = counts.to(torch.float32)
        row_scale = torch.where(n > 1, 1.0 / (n - 1).clamp(min=1), 0.0)
        self.counts, self.means, self.offsets = counts, means, offsets
        self.rows, self.row_scale = rows, row_scale
        self.residual_var = torch.zeros(self.num_classes, device=dev)
        self.exact = torch.ones(self.num_classes, dtype=torch.bool, device=dev)
        if self.rank is not None and self.rank < self.dim:
            self._compress()
        self._after_load()
        return self

    def _resolve_gather(self, all_gather) -> Optional[AllGather]:
        if all_gather is False:
            return None
        if all_gather is None or all_gather is True:
            if (
                dist.is_available()
                and dist.is_initialized()
                and dist.get_world_size() > 1
            ):
                return _torch_all_gather
            return None
        if not callable(all_gather):
            raise TypeError(
                'all_gather must be a callable tensor -> list of tensors '
                f'(one per rank), None or False; got {all_gather!r}'
            )
        return all_gather

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

    def _compress(self) -> None:
        """Rank-r probabilistic-PCA factor for classes with n_c - 1 > r."""
        r, dim = self.rank, self.dim
        counts = self.counts.tolist()
        offsets = self.offsets.tolist()
        parts, new_counts = [], []
        for c in range(self.num_classes):
            a, b, n = offsets[c], offsets[c + 1], counts[c]
            if n - 1 <= r:
                parts.append(self.rows[a:b])
                new_counts.append(n)
                continue
            mat = self.rows[a:b].to(torch.float32)
            _, sing, vh = torch.linalg.svd(mat, full_matrices=False)
            eig = sing.square() / (n - 1)
            resid = (eig.sum() - eig[:r].sum()).clamp(min=0) / (dim - r)
            scale = (eig[:r] - resid).clamp(min=0).sqrt()
            parts.append((scale[:, None] * vh[:r]).to(self.dtype))
            new_counts.append(r)
            self.row_scale[c] = 1.0
            self.residual_var[c] = resid
            self.exact[c] = False
        self.rows = torch.cat(parts)
        sizes = torch.tensor(new_counts, device=self.device)
        self.offsets = torch.zeros_like(self.offsets)
        self.offsets[1:] = torch.cumsum(sizes, 0)

    def _after_load(self) -> None:
        """Host copies of the small index tensors (no device syncs later)."""
        self._counts_host = self.counts.cpu()
        self._offsets_host = self.offsets.tolist()
        self._exact_host = self.exact.cpu()
        self._has_residual = bool((self.residual_var > 0).any())
        sizes = self.offsets[1:] - self.offsets[:-1]
        self.row_labels = torch.repeat_interleave(
            torch.arange(self.num_classes, device=self.device), sizes
        )
        self.finalized = True

    # ------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------
    def _require_finalized(self) -> None:
        if not self.finalized:
            raise RuntimeError(
                'the ClassFeatureBank has no statistics yet; add() the '
                'training features and call finalize() first'
            )

    def _check_sampleable(self, classes_host: Tensor, role: str) -> None:
        if classes_host.numel() == 0:
            return
        lo, hi = int(classes_host.min()), int(classes_host.max())
        if lo < 0 or hi >= self.num_classes:
            raise ValueError(
                f'class ids must lie in [0, {self.num_classes}), got '
                f'[{lo}, {hi}] (-1: a tail row without a support set; build '
                'row_support with anchor_support() and the same tail mask)'
            )
        n = self._counts_host[classes_host]
        if bool((n >= 2).all()):
            return
        c = int(classes_host[n < 2][0])
        if int(self._counts_host[c]) == 0:
            raise ValueError(
                f'class {c} has no features in the bank, so it cannot be '
                f'{role}; make sure the statistics pass covers the whole '
                'training set'
            )
        raise ValueError(
            f'class {c} has a single training feature, so its covariance '
            f'(divided by n_c - 1) is undefined and it cannot be {role}. '
            'Treat it as a tail class (raise the tail threshold above 1) so '
            'it is calibrated from donors with more images; donors always '
            'have more images than the anchor, so it never donates then.'
        )

    def _factor_noise(
        self,
        num: int,
        sample: Tensor,
        classes: Tensor,
        weights: Tensor,
        alpha: float,
        generator: Optional[torch.Generator],
        role: str,
    ) -> Tensor:
        """sum over pairs p of sqrt(w_p) * noise of class c_p, into rows s_p.

        One matrix product per distinct class (not per sample). The class
        ids (with a negative-weight flag) are read back to the host once to
        group the pairs; no feature data leaves the device.
        """
        dev = self.device
        flags = torch.cat([classes.detach().long(), (weights < 0).long()])
        flags = flags.cpu()
        cls_host, negative = flags[: classes.numel()], flags[classes.numel() :]
        if bool(negative.any()):
            raise ValueError('donor weights must be non-negative')
        self._check_sampleable(cls_host, role)
        order = torch.argsort(cls_host, stable=True)
        uniq, cnt = torch.unique_consecutive(
            cls_host[order], return_counts=True
        )
        order_dev = order.to(dev)
        samp = sample.to(dev)[order_dev]
        cls_dev = classes.to(dev, torch.long)[order_dev]
        w = weights.to(dev, torch.float32)[order_dev]
        coef = (w * self.row_scale[cls_dev]).sqrt()
        out = torch.zeros(num, self.dim, dtype=torch.float32, device=dev)
        start = 0
        for c, m in zip(uniq.tolist(), cnt.tolist()):
            a, b = self._offsets_host[c], self._offsets_host[c + 1]
            z = torch.randn(m, b - a, generator=generator, device=dev)
            z.mul_(coef[start : start + m, None])
            out.index_add_(
                0, samp[start : start + m], z @ self.rows[a:b].float()
            )
            start += m
        if alpha > 0 or self._has_residual:
            var = torch.full((num,), float(alpha), device=dev)
            var.index_add_(0, samp, w * self.residual_var[cls_dev])
            eps = torch.randn(num, self.dim, generator=generator, device=dev)
            out.add_(eps * var.sqrt()[:, None])
        return out

    def sample_class(
        self, classes: Tensor, generator: Optional[torch.Generator] = None
    ) -> Tensor:
        """Draw x ~ N(mu_c, Sigma_c) for each requested class.

        Args:
            classes: (M,) class ids (repeats allowed).
            generator: a ``torch.Generator`` on the bank's device.

        Returns:
            Tensor: (M, D) float32 samples on the bank's device.
        """
        self._require_finalized()
        classes = torch.as_tensor(classes).reshape(-1)
        num = classes.numel()
        cls_dev = classes.to(self.device, torch.long)
        noise = self._factor_noise(
            num,
            torch.arange(num, device=self.device),
            classes,
            torch.ones(num, device=self.device),
            0.0,
            generator,
            'sampled from its own statistics',
        )
        return self.means[cls_dev] + noise

    def sample_mixture(
        self,
        centres: Tensor,
        donors: Tensor,
        weights: Tensor,
        alpha: float = 0.0,
        generator: Optional[torch.Generator] = None,
    ) -> Tensor:
        """Draw x ~ N(centre, sum_i w_i Sigma_i + alpha I) per row.

        centre + sum_i sqrt(w_i) A_i^T z_i / sqrt(n_i - 1) + sqrt(alpha) eps
        (METHOD.md, stage two item 5 and "Memory").

        Args:
            centres: (M, D) means of the draws (e.g. calibrated means).
            donors: (M, k) class ids whose covariances are mixed.
            weights: (M, k) non-negative mixing weights w_i.
            alpha: isotropic dispersion added to the covariance (>= 0).
            generator: a ``torch.Generator`` on the bank's device.

        Returns:
            Tensor: (M, D) float32 samples on the bank's device.
        """
        self._require_finalized()
        if donors.ndim != 2 or centres.ndim != 2:
            raise ValueError('centres must be (M, D) and donors (M, k)')
        if weights.shape != donors.shape:
            raise ValueError(
                f'weights {tuple(weights.shape)} must match donors '
                f'{tuple(donors.shape)}'
            )
        num, k = donors.shape
        if centres.shape != (num, self.dim):
            raise ValueError(
                f'centres must have shape ({num}, {self.dim}), got '
                f'{tuple(centres.shape)}'
            )
        if not (isinstance(alpha, (int, float)) and alpha >= 0):
            raise ValueError(f'alpha must be a number >= 0, got {alpha!r}')
        sample = torch.arange(num, device=self.device).repeat_interleave(k)
        noise = self._factor_noise(
            num,
            sample,
            donors.reshape(-1),
            weights.reshape(-1),
            float(alpha),
            generator,
            'used as a donor',
        )
        return centres.to(self.device, torch.float32) + noise

    # ------------------------------------------------------------------
    # real rows (anchors) and dense views for checks
    # ------------------------------------------------------------------
    def anchor_rows(
        self, classes: Tensor, generator: Optional[torch.Generator] = None
    ) -> Tensor:
        """Bank rows to use as anchors, spread evenly over each class.

        The t-th of the g_c requests for class c in this call takes row
        floor((t + u_c) * n_c / g_c) of the class (u_c ~ U[0, 1) once per
        class and call): g_c <= n_c picks a stratified subset, g_c > n_c
        cycles through every row as evenly as possible.

        Returns:
            LongTensor: (M,) indices into ``rows`` (see :meth:`features`).
        """
        self._require_finalized()
        dev = self.device
        classes = torch.as_tensor(classes).reshape(-1)
        if classes.numel() == 0:
            return torch.empty(0, dtype=torch.long, device=dev)
        cls_host = classes.to('cpu', torch.long)  # free for host input
        classes = classes.to(dev, torch.long)
        if not bool(self._exact_host[cls_host].all()) or bool(
            (self._counts_host[cls_host] < 1).any()
        ):
            bad = [
                c
                for c in cls_host.unique().tolist()
                if not self._exact_host[c] or self._counts_host[c] < 1
            ]
            raise ValueError(
                f'class(es) {bad[:10]} hold no real rows (no features, or '
                f'compressed to rank {self.rank}); anchors need real '
                'features: use rank=None or a rank >= the tail threshold'
            )
        per_class = torch.bincount(classes, minlength=self.num_classes)
        order = torch.argsort(classes, stable=True)
        srt = classes[order]
        first = torch.cumsum(per_class, 0) - per_class
        t = torch.arange(classes.numel(), device=dev) - first[srt]
        u = torch.rand(self.num_classes, generator=generator, device=dev)
        n = self.counts[srt]
        pos = ((t + u[srt]) * n / per_class[srt]).floor().long()
        pos = torch.minimum(pos, n - 1)
        out = torch.empty_like(classes)
        out[order] = self.offsets[srt] + pos
        return out

    def features(self, row_ids: Tensor) -> Tensor:
        """Real features x~ = mu_c + A_c[j] of exact rows, float32 (M, D)."""
        self._require_finalized()
        row_ids = row_ids.to(self.device, torch.long)
        cls = self.row_labels[row_ids]
        return self.means[cls] + self.rows[row_ids].to(torch.float32)

    def class_rows(self, c: int) -> Tensor:
        """Class c's stored factor rows (centred rows when exact)."""
        self._require_finalized()
        return self.rows[self._offsets_host[c] : self._offsets_host[c + 1]]

    def covariance(self, c: int) -> Tensor:
        """Dense D x D covariance of class c, float64: for tests only."""
        rows = self.class_rows(c).to(torch.float64)
        cov = rows.T @ rows * float(self.row_scale[c])
        return cov + float(self.residual_var[c]) * torch.eye(
            self.dim, dtype=torch.float64, device=self.device
        )

    # ------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Tensor]:
        """Plain tensors (no copy) for a checkpoint."""
        self._require_finalized()
        return {key: getattr(self, key) for key in _STATE_KEYS}

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        """Restore statistics saved by :meth:`state_dict`."""
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise KeyError(f'ClassFeatureBank state lacks {missing}')
        c, d = self.num_classes, self.dim
        expect = {
            'counts': (c,),
            'means': (c, d),
            'offsets': (c + 1,),
            'row_scale': (c,),
            'residual_var': (c,),
            'exact': (c,),
        }
        for key, shape in expect.items():
            if tuple(state[key].shape) != shape:
                raise ValueError(
                    f'state[{key!r}] has shape {tuple(state[key].shape)}, '
                    f'expected {shape} for num_classes={c}, dim={d}'
                )
        rows = state['rows']
        if rows.ndim != 2 or rows.shape[1] != d:
            raise ValueError(f'state["rows"] must be (R, {d})')
        if int(state['offsets'][-1]) != rows.shape[0]:
            raise ValueError('state["offsets"][-1] must equal len(rows)')
        self.reset()
        dev = self.device
        self.counts = state['counts'].to(dev, torch.long)
        self.means = state['means'].to(dev, torch.float32)
        self.offsets = state['offsets'].to(dev, torch.long)
        self.rows = rows.to(dev, self.dtype)
        self.row_scale = state['row_scale'].to(dev, torch.float32)
        self.residual_var = state['residual_var'].to(dev, torch.float32)
        self.exact = state['exact'].to(dev, torch.bool)
        self._after_load()

    def to(self, device: Union[str, torch.device]) -> 'ClassFeatureBank':
        """Move the finalized statistics to ``device`` (in place)."""
        self.device = torch.device(device)
        if self.finalized:
            self.load_state_dict(self.state_dict())
        return self

    def memory_bytes(self) -> int:
        """Bytes held by the bank's tensors (rows dominate)."""
        if self.finalized:
            tensors: Sequence[Tensor] = [
                *self.state_dict().values(),
                self.row_labels,
            ]
        else:
            tensors = [
                *(b for b in self._blocks if b is not None),
                *self._block_meta,
            ]
        return sum(t.numel() * t.element_size() for t in tensors)

    def __repr__(self) -> str:
        state = (
            f'{int(self.offsets[-1])} rows' if self.finalized else 'streaming'
        )
        return (
            f'{type(self).__name__}(num_classes={self.num_classes}, '
            f'dim={self.dim}, dtype={self.dtype}, rank={self.rank}, '
            f'device={self.device}, {state}, '
            f'{self.memory_bytes() / 2**20:.1f} MiB)'
        )
