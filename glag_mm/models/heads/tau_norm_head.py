"""A linear classifier that gives tau-normalisation what it needs.

A drop-in for ``LinearClsHead`` (same parameters, training and state dict,
so a stage-one checkpoint of a ``LinearClsHead`` loads as it is): its
predictions also carry the logits (``pred_logits``), and
:meth:`TauNormHead.weight_norms` / :meth:`TauNormHead.classifier_bias` give
the classifier's ||w_c|| and b_c, from which ``LongTailAccuracy(tau_norm=)``
computes the tau-normalised predictions (:mod:`glag_mm.evaluation.tau_norm`)
without any training.
"""

from typing import List, Optional

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class TauNormHead(LinearClsHead):
    """``LinearClsHead`` whose predictions carry their logits."""

    def weight_norms(self) -> torch.Tensor:
        """||w_c||_2 of every class's weight vector, (C,), detached."""
        return self.fc.weight.detach().norm(dim=1)

    def classifier_bias(self) -> torch.Tensor:
        """b_c of every class, (C,), detached (zeros without a bias)."""
        bias = self.fc.bias
        if bias is None:
            return torch.zeros_like(self.weight_norms())
        return bias.detach().clone()

    def predict(
        self, feats, data_samples: Optional[List[DataSample]] = None
    ) -> List[DataSample]:
        """``LinearClsHead.predict`` plus each sample's ``pred_logits``."""
        predictions = super().predict(feats, data_samples)
        logits = self(feats).detach()
        for sample, row in zip(predictions, logits):
            sample.set_field(row, 'pred_logits')
        return predictions
