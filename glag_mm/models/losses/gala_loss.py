"""Gradient-Aware Logit Adjustment loss (GALA)."""

from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from mmpretrain.registry import MODELS

from ...core.checks import check_choice, check_number
from ...core.gala import PHI_MODES, gala_adjust_logits
from .base import AdjustedCrossEntropyBase


@MODELS.register_module()
class GALALoss(AdjustedCrossEntropyBase):
    """Cross-entropy on gradient-aware adjusted logits.

    docs/method.md, "Sibling losses", GALA (Zhang et al., arXiv 2403.09036);
    the adjustment and ``phi_mode`` are in :mod:`glag_mm.core.gala`.

    theta (buffer ``pos_grad``) and phi (``neg_grad``) are persistent
    float64 buffers starting at zero. In training, after each forward they
    take this forward's increments from p = softmax(z') (detached; the
    gradient with respect to z' is p - onehot(k)), summed over DDP ranks.
    ``momentum=None`` keeps running sums (the paper; each increment added
    once [ours: the released code re-adds its cumulative matrix]); a float
    keeps an EMA [ours]. Soft targets (N, C): the row's class is their
    argmax. ``lambda2`` 1.0 (the authors' CIFAR-100-LT IF100 run: 1.2 /
    0.9); ``eps`` 1e-3 as the authors' code.
    """

    def __init__(
        self,
        num_classes: int,
        lambda1: float = 1.0,
        lambda2: float = 1.0,
        phi_mode: str = 'received',
        momentum: Optional[float] = None,
        eps: float = 1e-3,
        loss_weight: float = 1.0,
        reduction: str = 'mean',
    ) -> None:
        super().__init__(num_classes, loss_weight, reduction)
        owner = 'GALALoss'
        self.lambda1 = check_number('lambda1', lambda1, owner=owner)
        self.lambda2 = check_number('lambda2', lambda2, owner=owner)
        self.phi_mode = check_choice('phi_mode', phi_mode, PHI_MODES, owner)
        self.momentum = momentum  # None: running sums
        if momentum is not None:
            self.momentum = check_number(
                'momentum', momentum, above=0, at_most=1, owner=owner
            )
        self.eps = check_number('eps', eps, above=0, owner=owner)
        for name in ('pos_grad', 'neg_grad'):  # persistent
            self.register_buffer(name, torch.zeros(num_classes).double())

    def adjust(self, cls_score, classes):
        """z' (:func:`~glag_mm.core.gala.gala_adjust_logits`); in training,
        then adds this batch's increments (every sample counted once,
        whatever its ``weight``)."""
        adjusted = gala_adjust_logits(
            cls_score,
            classes,
            self.pos_grad,
            self.neg_grad,
            self.lambda1,
            self.lambda2,
            self.eps,
        )
        if self.training:  # theta, phi += the increments summed over ranks
            with torch.no_grad():
                p = F.softmax(adjusted.detach().double(), dim=-1)
                onehot = F.one_hot(classes, self.num_classes).double()
                pushed = p * (1.0 - onehot)  # onto the classifiers j != y_i
                if self.phi_mode == 'received':
                    d_phi = pushed.sum(dim=0)
                else:  # 'sent': what each class's samples pushed
                    d_phi = onehot.t() @ pushed.sum(dim=1)
                d = torch.cat([((1.0 - p) * onehot).sum(dim=0), d_phi])
                all_reduce(d, op='sum')
                for stat, inc in zip(
                    (self.pos_grad, self.neg_grad), d.split(self.num_classes)
                ):
                    if self.momentum is not None:  # EMA (1 - m) s + m d
                        stat.mul_(1.0 - self.momentum)
                        inc = self.momentum * inc
                    stat.add_(inc.to(stat))
        return adjusted
