"""Knowledge distillation term of GLAG's stage two (docs/method.md item 8).

    L_KD = T^2 * KL(softmax(z_t / T) || softmax(z_s / T))
         = T^2 * sum_c p_t,c (log p_t,c - log p_s,c)

averaged over the selected samples (the real samples of head / donor
classes). The teacher is the stage-one classifier; its logits are treated
as constants. The T^2 factor keeps the gradient scale independent of T
(Hinton et al. 2015).
"""

from typing import Optional

import torch
from torch import Tensor


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """T^2 KL(teacher || student) at temperature T > 0 of (M, C) logits
    (the teacher's detached), the mean over the rows ``mask`` (M,) selects
    (None: all); 0, still attached to the student's graph, if it selects
    none."""
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f'temperature must be > 0, got {temperature!r}')
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f'student logits {tuple(student_logits.shape)} and teacher '
            f'logits {tuple(teacher_logits.shape)} must have the same shape'
        )
    t = float(temperature)
    log_s = torch.log_softmax(student_logits / t, dim=1)
    log_t = torch.log_softmax(teacher_logits.detach().to(log_s.dtype) / t, 1)
    per_sample = (log_t.exp() * (log_t - log_s)).sum(1) * (t * t)
    if mask is None:
        return per_sample.mean()
    mask = mask.reshape(-1).to(per_sample.device, per_sample.dtype)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1)
