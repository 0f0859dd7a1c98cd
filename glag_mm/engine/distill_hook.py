"""Knowledge distillation from the stage-one model in stage two
(docs/method.md stage two item 8): beta(u) T^2 KL(softmax(z_t / T) ||
softmax(z_s / T)) over the real samples of head classes, the teacher being
the stage-one classifier on the same frozen features, z_t = W_1 f + b_1.
"""

import os.path as osp
from functools import partial
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from torch import Tensor

from ..core import check_number, check_schedule, log_prior, schedule_value
from ..core.calibration import tail_classes
from ..core.checks import check_choice
from ..core.distill import adjusted_teacher_logits
from ..datasets.feature_dataset import FeatureTensorDataset
from ..models.backbones import stage_one_checkpoint, stage_one_state
from ..runtime import resolve_class_counts, training_progress
from .feature_cache import (
    check_frozen_trunk,
    trunk_modules,
    unwrap,
)


def stage_one_classifier(path: str, head, owner: str):
    """(weight, bias) of the stage-one ``head.fc`` that fits ``head``, and
    the checkpoint's state dict (``module.`` dropped)."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{owner}: the teacher checkpoint {path!r} does not exist; train '
            'stage one first or point checkpoint (stage_one_checkpoint) at '
            'its final .pth file.'
        )
    state = stage_one_state(path, owner=owner)
    if 'head.fc.weight' not in state:
        raise ValueError(
            f"{owner}: {path!r} has no 'head.fc.weight'; the teacher must "
            'be a stage-one model with a linear head.'
        )
    weight, bias = state['head.fc.weight'], state.get('head.fc.bias')
    expected = (int(head.num_classes), int(head.in_channels))
    if tuple(weight.shape) != expected or (
        bias is not None and tuple(bias.shape) != expected[:1]
    ):
        raise ValueError(
            f'{owner}: the stage-one head.fc.weight has shape '
            f'{tuple(weight.shape)} but the model head is '
            f'(num_classes, in_channels) = {expected}; the teacher must be '
            'the stage-one model of the same dataset and trunk.'
        )
    return weight, bias, state


class LinearTeacher:
    """The stage-one classifier, frozen, as the KD teacher on raw pooled
    features, with the settings of its term: the head's ``loss()`` adds
    beta(u) T^2 KL over the real samples of head (non-tail) classes
    (:class:`~glag_mm.models.heads.distilled_linear_head.TeacherMixin`).

    Args:
        weight, bias: (C, D) and (C,) (or None) of the stage-one ``fc``.
        head_classes: (C,) bool, True for the classes distilled.
        schedule, beta_max, power, temperature: beta(u) and T.
        logit_classes: (C,) bool: the KL over these logits only (None: all).
        log_prior, teacher_tau: the teacher is z_t - teacher_tau log pi.
    """

    def __init__(
        self,
        weight: Tensor,
        bias: Optional[Tensor],
        head_classes: Tensor,
        schedule: str = 'convex',
        beta_max: float = 1.0,
        power: float = 2.0,
        temperature: float = 1.0,
        logit_classes: Optional[Tensor] = None,
        log_prior: Optional[Tensor] = None,
        teacher_tau: float = 0.0,
    ) -> None:
        self.weight = weight.detach().float()
        self.bias = None if bias is None else bias.detach().float()
        self.head_classes = head_classes.bool()
        self.beta_args = (schedule, beta_max, power)
        self.temperature, self.teacher_tau = temperature, teacher_tau
        self.logit_classes, self.log_prior = logit_classes, log_prior
        self.table: Optional[Tensor] = None

    def cache(self, features: Tensor, chunk: int = 8192) -> None:
        """z_t of every (cached, frozen) training feature, computed once and
        read by :meth:`logits` at the rows :meth:`rows` gives."""
        parts = features.split(chunk)
        self.table = torch.cat([self.product(part) for part in parts])

    def beta(self) -> float:
        """beta(u) at the current progress of the stage."""
        return schedule_value(training_progress(), *self.beta_args)

    def product(self, raw: Tensor) -> Tensor:
        """z_t = W_1 f + b_1 (no gradient)."""
        if self.weight.device != raw.device:  # move to the features
            self.weight = self.weight.to(raw.device)
            self.bias = None if self.bias is None else self.bias.to(raw.device)
            self.head_classes = self.head_classes.to(raw.device)
        with torch.no_grad():
            return F.linear(raw.float(), self.weight, self.bias)

    def rows(self, samples) -> Optional[Tensor]:
        """The cached table's rows of a batch (its ``sample_idx``), or None
        where there is no table or a sample has no index."""
        if self.table is None or samples is None:
            return None
        idx = [getattr(s, 'sample_idx', None) for s in samples]
        return None if None in idx else torch.tensor(idx)

    def logits(self, raw: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """The teacher's logits of ``raw`` (the table's ``rows`` where
        given), z_t - teacher_tau log pi."""
        z_t = self.product(raw) if rows is None else self.table[rows]
        return adjusted_teacher_logits(
            z_t.to(raw.device), self.log_prior, self.teacher_tau
        )


@HOOKS.register_module()
class GLAGDistillHook(Hook):
    """Distil the stage-one classifier into the stage-two head.

    Before training it hands the head (AFGHead, LWSHead,
    DistilledLinearClsHead) a :class:`LinearTeacher` of ``checkpoint``'s
    ``head.fc`` through ``set_teacher``; the head adds ``loss_kd`` in its
    ``loss()``, under DDP. It refuses a missing checkpoint, a teacher of
    another shape or trunk, and a trainable trunk parameter. The options:
    docs/plugin.md and docs/method.md stage two item 8.

    Args:
        checkpoint: the stage-one checkpoint (None: the run's
            ``stage_one_checkpoint``).
        schedule, beta_max, power: beta(u), :func:`schedule_value`
            (defaults ``'convex'`` [paper], 1.0 [ours], 2).
        temperature: T (default 1.0 [ours]).
        tail_threshold: tail classes are not distilled (None: the head's
            ``tail_threshold``, else 100; a float in (0, 1): of n_max).
        kd_logits: the KL over ``'all'`` logits or the ``'head'`` classes'.
        teacher_tau: the teacher is z_t - teacher_tau log pi (default 0).
        check_trunk: compare the checkpoint's trunk with the model's.
        cache_logits_mib: on a CPU run on cached features, the teacher's
            logits of every training feature are computed once when they
            take at most this many MiB (0: never).
    """

    priority = 'NORMAL'

    def __init__(
        self,
        checkpoint: Optional[str] = None,
        schedule: str = 'convex',
        beta_max: float = 1.0,
        power: float = 2.0,
        temperature: float = 1.0,
        tail_threshold=None,
        check_trunk: bool = True,
        cache_logits_mib: float = 2048,
        kd_logits: str = 'all',
        teacher_tau: float = 0.0,
    ) -> None:
        if checkpoint is not None and not isinstance(checkpoint, str):
            raise TypeError(
                "GLAGDistillHook: checkpoint must be None (the run's "
                'stage_one_checkpoint) or the path of the stage-one '
                f'checkpoint, got {checkpoint!r}'
            )
        check_schedule(schedule, beta_max, power, name='beta_max')
        own = 'GLAGDistillHook'
        check_choice('kd_logits', kd_logits, ('all', 'head'), own)
        number = partial(check_number, owner=own)
        self.temperature = number('temperature', temperature, above=0)
        self.teacher_tau = number('teacher_tau', teacher_tau, at_least=0)
        self.cache_logits_mib = number(
            'cache_logits_mib', cache_logits_mib, at_least=0
        )
        self.checkpoint, self.kd_logits = checkpoint, kd_logits
        self.beta_args = (schedule, float(beta_max), float(power))
        self.tail_threshold, self.check_trunk = tail_threshold, check_trunk
        self.teacher: Optional[LinearTeacher] = None

    def _check_same_trunk(self, state: dict, model) -> None:
        for prefix, module in trunk_modules(model):
            for name, tensor in module.state_dict().items():
                key = f'{prefix}.{name}'
                if key not in state or not tensor.is_floating_point():
                    continue
                theirs = state[key]
                if theirs.shape != tensor.shape or not torch.allclose(
                    theirs.float(), tensor.detach().cpu().float()
                ):
                    raise ValueError(
                        f'GLAGDistillHook: {key} of the model differs from '
                        f'the teacher checkpoint {self.checkpoint!r}; stage '
                        'two must start from the stage-one trunk '
                        "(backbone=dict(type='FrozenBackbone', ...) with "
                        'stage_one_checkpoint), or pass check_trunk=False.'
                    )

    def before_train(self, runner) -> None:
        model, own = unwrap(runner.model), 'GLAGDistillHook'
        head = model.head
        check_frozen_trunk(model, own, 'the teacher reads the same features')
        self.checkpoint = self.checkpoint or stage_one_checkpoint(own)
        weight, bias, state = stage_one_classifier(self.checkpoint, head, own)
        if self.check_trunk:
            self._check_same_trunk(state, model)
        known = getattr(head, 'class_counts', None)  # AFGHead's pass
        counts = resolve_class_counts(known, owner=own)
        threshold = self.tail_threshold
        if threshold is None:
            threshold = getattr(head, 'tail_threshold', 100)
        head_classes = ~tail_classes(torch.as_tensor(counts), threshold)
        self.teacher = teacher = LinearTeacher(
            weight,
            bias,
            head_classes,
            *self.beta_args,
            self.temperature,
            head_classes if self.kd_logits == 'head' else None,
            log_prior(counts),
            self.teacher_tau,
        )
        set_teacher = getattr(head, 'set_teacher', None)
        if not callable(set_teacher):
            raise TypeError(
                f'GLAGDistillHook: the head {type(head).__name__} takes no '
                'teacher (set_teacher); distil into AFGHead, LWSHead or '
                'DistilledLinearClsHead (set model.head.type='
                "'DistilledLinearClsHead' for a LinearClsHead)."
            )
        set_teacher(teacher)
        schedule, beta_max, _ = self.beta_args
        runner.logger.info(
            f'GLAGDistillHook: teacher {self.checkpoint}, beta '
            f'{schedule} to {beta_max:g}, T={self.temperature:g}, '
            f'{int(teacher.head_classes.sum())} head classes distilled'
        )

    def before_train_epoch(self, runner) -> None:
        """On the CPU, over cached features (StageTwoTrainLoop), the
        teacher's logits of every training feature, once."""
        teacher, model = self.teacher, unwrap(runner.model)
        dataset = getattr(runner.train_loop.dataloader, 'dataset', None)
        on_cpu = next(iter(model.parameters())).device.type == 'cpu'
        if teacher is None or teacher.table is not None or not on_cpu:
            return
        if isinstance(dataset, FeatureTensorDataset):
            mib = dataset.features.shape[0] * teacher.weight.shape[0] / 2**18
            if 0 < mib <= self.cache_logits_mib:
                teacher.cache(dataset.features)
                runner.logger.info('GLAGDistillHook: teacher logits cached')
