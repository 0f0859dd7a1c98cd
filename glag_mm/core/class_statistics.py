"""Finished class statistics of stage two, with a bounded cost per draw.

docs/method.md, stage two items 3 to 5 and "Memory". For every class c the
statistics hold the mean mu_c of its (Tukey-transformed) training features
and a covariance factor F_c with

    Sigma_c ~= s_c F_c^T F_c + rho_c I,

never a D x D matrix. Which classes are exact and which approximated [ours]:

* n_c <= ``exact_rows`` (default 32): F_c is the class's centred rows
  X_c - mu_c (n_c x D), s_c = 1 / (n_c - 1), rho_c = 0: the unbiased
  covariance exactly, and sqrt(s_c) F_c^T z, z ~ N(0, I), an exact draw;
* n_c > ``exact_rows``: the rank-r probabilistic-PCA approximation
  (r = min(``rank``, n_c - 1), default 32): the top-r eigenpairs
  (lam_j, v_j) of the class's covariance, rho_c = the mean of the other
  D - r eigenvalues (so the trace is kept), F_c = diag(sqrt(lam_j - rho_c))
  V_r^T, s_c = 1. It equals V_r diag(lam) V_r^T + rho_c (I - V_r V_r^T):
  exact on the top-r subspace, isotropic on its complement.

A draw therefore costs O(max(exact_rows, rank) D) whatever the class size.
All rows are stored in float32, the precision of the products.

Tail classes also keep their real centred rows as anchors (for an exact
class these are its factor rows; for a larger tail class they are stored
once more after the factors), with each anchor's support set and donor
weights (docs/method.md item 4 and 5) computed once here.

:meth:`ClassStatistics.save` writes tensors only, which every rank of a
machine memory-maps (one copy in memory).
"""

import itertools
from typing import Callable, Dict, Iterable, Optional, Tuple, Union

import torch
from torch import Tensor

from .calibration import support_sets
from .file_stamp import seal

_TABLES = (
    'counts factor_start factor_size factor_scale residual exact tail '
    'anchor_start anchor_size anchor_base donors donor_weights'
).split()
_CHUNK_ROWS = 2048  # anchors per support-set block (2048 x C distances)


def _low_rank_factor(block: Tensor, rank: int) -> Tuple[Tensor, float]:
    """PPCA factor (r x D) and residual variance of centred rows (n x D)."""
    n, dim = block.shape
    r = min(rank, n - 1, dim)
    a = block.double()
    if n <= dim:  # eigenpairs of the n x n Gram matrix
        ev, u = torch.linalg.eigh(a @ a.T)
        ev, u = ev.flip(0)[:r].clamp(min=0), u.flip(1)[:, :r]
        norm = torch.where(ev > 0, ev.rsqrt(), torch.zeros_like(ev))
        dirs = (u.T @ a) * norm[:, None]
    else:
        ev, v = torch.linalg.eigh(a.T @ a)
        ev, dirs = ev.flip(0)[:r].clamp(min=0), v.flip(1)[:, :r].T
    lam = ev / (n - 1)
    trace = float(a.square().sum()) / (n - 1)
    resid = max(trace - float(lam.sum()), 0.0) / (dim - r) if dim > r else 0.0
    scale = (lam - resid).clamp(min=0).sqrt()
    return (scale[:, None] * dirs).float(), resid


class ClassStatistics:
    """Read-only class statistics: means, factors, anchors, support sets.

    Build with :meth:`from_centred_rows` (what
    :class:`~glag_mm.core.statistics_builder.StatisticsBuilder` does) or
    :meth:`load`. Attributes (CPU tables unless said otherwise):

    * ``means`` (C, D) float32 and ``rows`` (R, D) float32 on ``device``;
    * class c's factor: ``rows[factor_start[c]:][:factor_size[c]]``, scaled
      by ``factor_scale[c]``, plus ``residual[c]`` I; ``exact[c]`` says
      whether it is the exact covariance;
    * ``tail[c]``; a tail class's anchors are
      ``means[c] + rows[anchor_start[c]:][:anchor_size[c]]`` and anchor j's
      support set ``donors[anchor_base[c] + j]`` with weights
      ``donor_weights[anchor_base[c] + j]``.
    """

    def __init__(
        self,
        means: Tensor,
        rows: Tensor,
        tables: Dict[str, Tensor],
        settings: Optional[dict] = None,
    ) -> None:
        self.means, self.rows = means, rows
        for key in _TABLES:
            setattr(self, key, tables[key].cpu())
        self.settings = dict(settings or {})
        self.device = means.device
        self._has_residual = bool((self.residual > 0).any())
        # one view per class: no slicing per draw
        spans = zip(self.factor_start.tolist(), self.factor_size.tolist())
        self._factors = [rows[a : a + n] for a, n in spans]

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def from_centred_rows(
        cls,
        counts: Tensor,
        means: Tensor,
        rows: Tensor,
        tail_mask: Tensor,
        **kw,
    ) -> 'ClassStatistics':
        """:meth:`from_class_blocks` of ``rows`` (N, D) float32 centred
        rows sorted by class, split by ``counts``; ``kw`` as there."""
        n = torch.as_tensor(counts).cpu().long().tolist()
        blocks = zip(means, torch.split(rows, n))
        return cls.from_class_blocks(counts, blocks, tail_mask, **kw)

    @classmethod
    def from_class_blocks(
        cls,
        counts: Tensor,
        blocks: Iterable[Tuple[Tensor, Tensor]],
        tail_mask: Tensor,
        num_donors: int = 3,
        weighting: str = 'count_distance',
        exact_rows: int = 32,
        rank: int = 32,
        out_rows: Optional[Callable[[int, int], Tensor]] = None,
    ) -> 'ClassStatistics':
        """Bound each class's factor; keep anchors and support sets.

        ``counts`` (C,) n_c; ``blocks`` yields, class by class, (mu_c (D,),
        centred rows (n_c, D) float32): only one class is held at a time;
        ``tail_mask`` (C,) bool: the classes calibrated from ``num_donors``
        donors; classes with at most ``exact_rows`` images keep their exact
        covariance, larger ones a rank-``rank`` factor (module docstring;
        both >= 1, AFGHead checks). ``out_rows(R, D)``: the (R, D) float32
        tensor the factors and anchors are written to (e.g. a memory-mapped
        file; default ``torch.empty`` where the means are).
        """
        counts = torch.as_tensor(counts).cpu().long()
        tail = torch.as_tensor(tail_mask).cpu().bool()
        exact = counts <= exact_rows
        blocks = iter(blocks)
        first = next(blocks)
        dim = first[0].numel()
        blocks = itertools.chain([first], blocks)
        # the layout, known from the counts: factors, then extra anchors
        limit = (counts - 1).clamp(max=min(rank, dim))
        size = torch.where(exact, counts, limit)
        start = torch.cumsum(size, 0) - size
        extra = torch.where(tail & ~exact, counts, 0)
        anchor_start = torch.where(
            exact, start, int(size.sum()) + torch.cumsum(extra, 0) - extra
        )
        total = int(size.sum() + extra.sum())
        make = out_rows or (
            lambda r, d: torch.empty(r, d, device=first[0].device)
        )
        out = make(total, dim)
        means, scale, resid = [], [], []
        for c, (mean, block) in enumerate(blocks):
            if len(block) <= exact_rows:  # exact: the centred rows
                factor, res = block, 0.0
                scale.append(1.0 / (len(block) - 1) if len(block) > 1 else 0.0)
            else:
                factor, res = _low_rank_factor(block, rank)
                scale.append(1.0)
            a = int(start[c])
            out[a : a + len(factor)] = factor.to(out.device)
            if extra[c]:  # a larger tail class's anchors: its rows again
                a = int(anchor_start[c])
                out[a : a + len(block)] = block.to(out.device)
            means.append(mean.float())
            resid.append(res)
        t = dict(
            factor_start=start,
            factor_size=size,
            factor_scale=torch.tensor(scale),
            residual=torch.tensor(resid),
        )
        anchors = torch.where(tail, counts, 0)
        t.update(
            counts=counts,
            exact=exact,
            tail=tail,
            anchor_start=torch.where(tail, anchor_start, 0),
            anchor_size=anchors,
            anchor_base=torch.cumsum(anchors, 0) - anchors,
            donors=torch.zeros(
                int(anchors.sum()), num_donors, dtype=torch.long
            ),
            donor_weights=torch.zeros(int(anchors.sum()), num_donors),
        )
        settings = dict(exact_rows=exact_rows, rank=rank, weighting=weighting)
        stats = cls(torch.stack(means).to(out.device), out, t, settings)
        stats._fill_support(num_donors, weighting)
        return stats

    def _fill_support(self, k: int, weighting: str) -> None:
        """Support set and donor weights of every anchor, once."""
        sizes = self.anchor_size
        labels = torch.repeat_interleave(torch.arange(sizes.numel()), sizes)
        shift = self.anchor_start - self.anchor_base
        ids = torch.arange(labels.numel()) + shift[labels]
        counts = self.counts.to(self.device)
        for a in range(0, ids.numel(), _CHUNK_ROWS):
            cls_ = labels[a : a + _CHUNK_ROWS]
            x = self.anchor_features(ids[a : a + _CHUNK_ROWS], cls_)
            d, w = support_sets(x, cls_, self.means, counts, k, weighting)
            self.donors[a : a + _CHUNK_ROWS] = d.cpu()
            self.donor_weights[a : a + _CHUNK_ROWS] = w.cpu()

    def anchor_features(self, row_ids: Tensor, classes: Tensor) -> Tensor:
        """Real features x~ = mu_c + rows[j] of anchor rows, (M, D)."""
        row_ids = row_ids.to(self.device)
        return self.means[classes.to(self.device)] + self.rows[row_ids]

    def noise(
        self,
        num: int,
        samples: Tensor,
        classes: Tensor,
        weights: Tensor,
        extra_var: Optional[Tensor],
        generator: Optional[torch.Generator] = None,
        out: Optional[Tensor] = None,
    ) -> Tensor:
        """sum over pairs p of sqrt(w_p) * a draw of N(0, Sigma_{c_p}).

        Added into row ``samples[p]`` of ``out`` ((num, D) float32, zeros
        when None), plus sqrt(extra_var + sum_p w_p rho_{c_p}) eps per row
        (docs/method.md "Memory": the mixture sum_i w_i Sigma_i + alpha I). One
        product z (m x size_c) @ F_c per distinct class; host tensors
        ``samples``, ``classes`` and ``weights`` (P,); ``extra_var`` (num,)
        or None.
        """
        dev = self.device
        if out is None:
            out = torch.zeros(num, self.dim, device=dev)
        if classes.numel() == 0:
            return out
        order = torch.argsort(classes, stable=True)
        cls_s = classes[order]
        coef = (weights[order] * self.factor_scale[cls_s]).sqrt()
        uniq, cnt = torch.unique_consecutive(cls_s, return_counts=True)
        sizes = self.factor_size[uniq]
        # one draw for every pair's z, each scaled by its sqrt(w s_c)
        pair_sizes = self.factor_size[cls_s]
        z_all = torch.randn(
            int(pair_sizes.sum()), generator=generator, device=dev
        )
        z_all.mul_(coef.repeat_interleave(pair_sizes).to(dev))
        buf = torch.empty(classes.numel(), self.dim, device=dev)
        uniq, cnt = uniq.tolist(), cnt.tolist()
        for c, z, part in zip(
            uniq,
            torch.split(z_all, (sizes * torch.tensor(cnt)).tolist()),
            torch.split(buf, cnt),
        ):
            torch.mm(z.view(part.shape[0], -1), self._factors[c], out=part)
        var = torch.zeros(num) if extra_var is None else extra_var.clone()
        if self._has_residual:
            var.index_add_(0, samples, weights * self.residual[classes])
        idx = torch.nonzero(var > 0).flatten()
        if idx.numel():
            eps = torch.randn(
                idx.numel(), self.dim, generator=generator, device=dev
            )
            eps.mul_(var[idx].sqrt().to(dev)[:, None])
            out.index_add_(0, idx.to(dev), eps)
        return out.index_add_(0, samples[order].to(dev), buf)

    def tensors(self) -> Dict[str, Tensor]:
        return dict(
            means=self.means,
            rows=self.rows,
            **{k: getattr(self, k) for k in _TABLES},
        )

    def memory_bytes(self) -> int:
        """Bytes of every tensor (rows dominate)."""
        return sum(t.nbytes for t in self.tensors().values())

    def save(self, path: str, **info: Union[str, int]) -> None:
        """Write the tensors (and plain ``info``) with ``torch.save``,
        stamped (:func:`glag_mm.core.file_stamp.seal`) with ``info['key']``."""
        payload = {k: v.cpu() for k, v in self.tensors().items()}
        payload['settings'] = dict(self.settings)
        payload['info'] = dict(info)
        torch.save(seal(payload, str(info.get('key'))), path)

    @classmethod
    def load(
        cls,
        path: str,
        mmap: bool = True,
        device: Union[str, torch.device, None] = None,
    ) -> 'ClassStatistics':
        """Read a file written by :meth:`save` (no code runs from it); with
        ``mmap`` every process of a machine shares one copy in memory (a
        run checks the file first: :func:`glag_mm.engine.files.
        usable_stage_two_file`)."""
        data = torch.load(
            path, map_location='cpu', mmap=mmap, weights_only=True
        )
        dev = torch.device('cpu' if device is None else device)
        stats = cls(
            data['means'].to(dev),
            data['rows'].to(dev),
            {k: data[k] for k in _TABLES},
            data.get('settings'),
        )
        stats.info = dict(data.get('info', {}))
        return stats
