"""Knowledge distillation term of GLAG's stage two (docs/method.md item 8).

    L_KD = T^2 * KL(softmax(z_t / T) || softmax(z_s / T))
         = T^2 * sum_c p_t,c (log p_t,c - log p_s,c)

averaged over the selected samples (the real samples of head / donor
classes). The teacher is the stage-one classifier; its logits are treated
as constants. The T^2 factor keeps the gradient scale independent of T
(Hinton et al. 2015).

Two options [ours; the paper's "KD for head classes" read two other ways]:
``classes`` restricts both softmaxes (and so the KL) to the logits of a
set of classes, e.g. the head classes, so the teacher's head bias says
nothing about the rare classes; :func:`adjusted_teacher_logits` first
logit-adjusts the teacher, z_t - tau_t log pi [prior: Menon et al. 2021,
eq. (9)], so it is less biased toward the head.
"""

from typing import Optional

import torch
from torch import Tensor


def adjusted_teacher_logits(
    teacher_logits: Tensor, log_prior: Tensor, tau: float = 0.0
) -> Tensor:
    """z_t - tau log pi for (M, C) logits and the (C,) log prior (tau 0:
    unchanged)."""
    if not (isinstance(tau, (int, float)) and tau >= 0):
        raise ValueError(f'teacher tau must be a number >= 0, got {tau!r}')
    if tau == 0:
        return teacher_logits
    log_prior = log_prior.to(teacher_logits.device, teacher_logits.dtype)
    return teacher_logits - tau * log_prior


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    mask: Optional[Tensor] = None,
    classes: Optional[Tensor] = None,
) -> Tensor:
    """T^2 KL(teacher || student) at temperature T > 0 of (M, C) logits
    (the teacher's detached), the mean over the rows ``mask`` (M,) selects
    (None: all); 0, still attached to the student's graph, if it selects
    none. ``classes`` (C,) bool: both distributions are the softmax over
    those classes' logits only (None: all C)."""
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f'temperature must be > 0, got {temperature!r}')
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f'student logits {tuple(student_logits.shape)} and teacher '
            f'logits {tuple(teacher_logits.shape)} must have the same shape'
        )
    if classes is not None:
        classes = classes.reshape(-1).to(student_logits.device, torch.bool)
        if classes.numel() != student_logits.shape[1] or not classes.any():
            raise ValueError(
                f'classes must be a ({student_logits.shape[1]},) bool mask '
                f'selecting at least one class, got {tuple(classes.shape)} '
                f'with {int(classes.sum())} selected'
            )
        student_logits = student_logits[:, classes]
        teacher_logits = teacher_logits[:, classes]
    t = float(temperature)
    log_s = torch.log_softmax(student_logits / t, dim=1)
    log_t = torch.log_softmax(teacher_logits.detach().to(log_s.dtype) / t, 1)
    per_sample = (log_t.exp() * (log_t - log_s)).sum(1) * (t * t)
    if mask is None:
        return per_sample.mean()
    mask = mask.reshape(-1).to(per_sample.device, per_sample.dtype)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1)
