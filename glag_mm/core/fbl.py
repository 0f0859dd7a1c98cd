"""Feature-Balanced Loss (FBL), the functional core.

docs/method.md, "Sibling losses", FBL (Li, Cheung & Jiang, "Feature-Balanced
Loss for Long-Tailed Visual Recognition", ICME 2022). With n_j the training
images of class j and f the pooled feature of a sample,

    lambda~_j = (log n_max - log n_j) / (log n_max - log n_min)
    z'_j = z_j - a * lambda * lambda~_j / (||f||_2 + eps)     for every j,

lambda~ being 0 for the largest class and 1 for the smallest. The gradient
flows through ||f||, which is what pushes tail-class features to larger
norms. a is a curriculum: the authors' per-epoch (e / (E - 10)) ** 2,
unclipped, or the GraLoss schedule family (:mod:`.schedules`).
"""

from typing import Sequence, Union

import torch

from .schedules import SCHEDULES

CURRICULA = ('authors', *SCHEDULES)


def fbl_class_strength(
    class_counts: Union[Sequence[int], torch.Tensor],
) -> torch.Tensor:
    """lambda~_j in [0, 1] from checked counts (all >= 1), on their device;
    all 0 for equal classes [ours; 0 / 0 there]."""
    log_n = torch.as_tensor(class_counts, dtype=torch.float64).log()
    spread = (log_n.max() - log_n.min()).clamp_min(1e-300)
    return ((log_n.max() - log_n) / spread).float()


def authors_curriculum(epoch: int, max_epochs: int) -> float:
    """The authors' a = (e / (E - 10)) ** 2, e 0-based, unclipped (about
    1.1 at the end for E = 200)."""
    if max_epochs <= 10:
        raise ValueError(
            "curriculum='authors' is (epoch / (max_epochs - 10)) ** 2 and "
            f'needs max_epochs > 10, got {max_epochs}; use an epoch-based '
            "loop with more epochs or a schedule such as curriculum='convex'"
        )
    return (epoch / (max_epochs - 10)) ** 2
