"""Temperature scaling, the temperature chosen on validation.

[prior: Guo et al. 2017, "On Calibration of Modern Neural Networks", ICML,
sec. 4.2]: the logits z_i are divided by one scalar T > 0, chosen to
minimise the negative log-likelihood on held-out data,

    NLL(T) = -1/N sum_i log softmax(z_i / T)_{y_i},

which leaves every prediction's argmax unchanged and only moves its
confidence (T > 1 softens an over-confident model). softmax(z / T) equals
softmax(log p / T) for p = softmax(z), so the softmax scores suffice. T is
taken from a grid (exact to its step, no optimiser), as tau in
:mod:`.posthoc_tau`, which also chooses it on validation and applies it on
test.
"""

from typing import Sequence, Tuple

import torch

# 0.5, 0.6, ..., 5.0: from sharpening to five-fold softening.
DEFAULT_TEMPERATURE_GRID = tuple(round(0.1 * i, 1) for i in range(5, 51))


def scaled_log_probs(
    scores: torch.Tensor, temperatures: Sequence[float]
) -> torch.Tensor:
    """log softmax(log p / T) for softmax scores (..., C) and every T:
    (G, ..., C), float64."""
    log_p = scores.double().clamp_min(torch.finfo(torch.float64).tiny).log()
    grid = torch.as_tensor(list(temperatures), dtype=torch.float64)
    grid = grid.view(-1, *([1] * log_p.dim()))
    return torch.log_softmax(log_p.unsqueeze(0) / grid, dim=-1)


def nll_and_confidence_over_grid(
    scores: torch.Tensor, target: torch.Tensor, temperatures: Sequence[float]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sample NLL and top-1 confidence at every T: scores (N, C) and
    target (N,) -> two (G, N) tensors."""
    log_q = scaled_log_probs(scores, temperatures)
    index = target.long().view(1, -1, 1).expand(log_q.shape[0], -1, 1)
    nll = -log_q.gather(-1, index).squeeze(-1)
    return nll, log_q.max(dim=-1).values.exp()


def select_temperature(
    nll: torch.Tensor, temperatures: Sequence[float]
) -> Tuple[int, torch.Tensor]:
    """(index of the T of least mean NLL, (G,) mean NLL) from per-sample
    NLL (G, N); ties go to the T nearest 1 (no scaling), then the first."""
    values = nll.double().mean(dim=1)
    ties = [g for g in range(len(values)) if values[g] == values.min()]
    return min(ties, key=lambda g: (abs(temperatures[g] - 1), g)), values
