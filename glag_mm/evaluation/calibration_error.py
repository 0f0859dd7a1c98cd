"""Expected calibration error and reliability bins of top-1 predictions.

[prior: Naeini et al. 2015; Guo et al. 2017, "On Calibration of Modern
Neural Networks", eq. (3)]: the top-1 confidences c_i = p_i,yhat_i of the
N predictions are put in B equal-width bins I_b = (b/B, (b+1)/B] (the first
bin also takes c = 0); with acc(I_b) the fraction of correct predictions
and conf(I_b) the mean confidence of the bin,

    ECE = sum_b |I_b| / N * |acc(I_b) - conf(I_b)|.

B = 15 as in Guo et al. Values here are in percent, like the accuracies.
"""

import math

import torch

from .summaries import ReliabilityTable

ECE_BINS = 15


def reliability_bins(
    confidence: torch.Tensor,
    correct: torch.Tensor,
    num_bins: int = ECE_BINS,
) -> ReliabilityTable:
    """The reliability table (percent) of N top-1 probabilities in [0, 1]
    and whether each prediction is right."""
    confidence = confidence.double().flatten()
    correct = correct.flatten().double()
    if confidence.numel() and (confidence.min() < 0 or confidence.max() > 1):
        raise ValueError(
            'reliability bins need top-1 probabilities in [0, 1], got '
            f'[{confidence.min():.4g}, {confidence.max():.4g}]: the model '
            'must return softmax scores as pred_score.'
        )
    inner = torch.arange(1, num_bins, dtype=torch.float64) / num_bins
    index = torch.searchsorted(inner, confidence).clamp(0, num_bins - 1)
    count = torch.bincount(index, minlength=num_bins).double()
    conf_sum = torch.bincount(index, confidence, minlength=num_bins)
    hit_sum = torch.bincount(index, correct, minlength=num_bins)
    filled = count > 0
    mean_conf = torch.where(filled, conf_sum / count.clamp_min(1), 0.0)
    accuracy = torch.where(filled, hit_sum / count.clamp_min(1), 0.0)
    total = count.sum()
    gaps = (accuracy - mean_conf).abs() * count
    ece = (gaps.sum() / total).item() * 100 if total > 0 else math.nan

    def percent(values):
        return [
            v * 100 if f else None
            for v, f in zip(values.tolist(), filled.tolist())
        ]

    return ReliabilityTable(
        count=[int(c) for c in count.tolist()],
        confidence=percent(mean_conf),
        accuracy=percent(accuracy),
        ece=ece,
    )
