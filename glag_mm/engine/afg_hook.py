"""AFGHead's statistics and adaptive confidence (docs/method.md stage two;
the order of events: docs/architecture.md, "Stage two").

Settings that need only the class counts are checked before training; the
statistics are loaded or built (:mod:`glag_mm.engine.afg_statistics`) before
the first epoch, once the loop has cached the features; each validation of a
training run updates s_c (item 6) before the epoch's checkpoint is saved.
"""

import os.path as osp
from typing import Optional

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ..core.calibration import check_generation_setup
from ..core.checks import check_integer
from ..models.backbones.frozen_backbone import stage_one_checkpoint
from ..models.heads import AFGHead
from ..runtime import get_train_class_counts
from .afg_statistics import load_or_build
from .distill_hook import LinearTeacher, stage_one_classifier
from .feature_cache import batch_features, unwrap
from .stage_two_loops import ValidateBeforeSaveLoop


@HOOKS.register_module()
class AFGHook(Hook):
    """Provide :class:`~glag_mm.models.heads.AFGHead`'s statistics; adapt s_c.

    Args:
        pipeline: of the statistics pass (default the validation, else the
            test dataloader's: no random augmentation).
        batch_size, num_workers: of the pass (default the training ones).
        update_confidence: update s_c after each validation from
            ``'lt/per_class'`` (``LongTailAccuracy``'s).
        progress: draw a progress bar on rank 0.
        stage_one_checkpoint: default the run's; its classifier's accuracy
            on validation is the reference of ``confidence_reference=
            'stage_one'`` (computed once, then checkpointed).
    """

    priority = 'NORMAL'

    def __init__(
        self,
        pipeline: Optional[list] = None,
        batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
        update_confidence: bool = True,
        progress: bool = True,
        stage_one_checkpoint: Optional[str] = None,
    ) -> None:
        if pipeline is not None and not isinstance(pipeline, (list, tuple)):
            raise TypeError('AFGHook: pipeline must be a list of transforms')
        for name, value, least in (
            ('batch_size', batch_size, 1),
            ('num_workers', num_workers, 0),
        ):
            if value is not None:
                check_integer(name, value, at_least=least, owner='AFGHook')
        self.pass_options = dict(  # of the statistics pass
            pipeline=None if pipeline is None else list(pipeline),
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
        )
        self.update_confidence = update_confidence
        self.stage_one_checkpoint = stage_one_checkpoint
        self._training = False  # only a training run's validations update
        self.statistics_path: Optional[str] = None

    @staticmethod
    def _head(runner):
        head = getattr(unwrap(runner.model), 'head', None)
        if not isinstance(head, AFGHead):
            raise TypeError(
                'AFGHook drives an AFGHead, but the model head is '
                f"{type(head).__name__}; set model.head.type='AFGHead' or "
                'remove AFGHook.'
            )
        return head

    @staticmethod
    def _check_setup(runner, head, counts) -> None:
        """Warn of settings that cannot work with these class counts (too
        few donors, thresholds) or with the sampler."""
        for message in check_generation_setup(
            counts, head.tail_threshold, head.num_donors, head.n_max
        ):
            runner.logger.warning(f'AFGHead: {message}')
        batches = getattr(runner.train_loop.dataloader, 'batch_sampler', None)
        sampler = getattr(batches, 'sampler', None)
        name = type(getattr(sampler, 'sampler', sampler)).__name__
        class_aware = 'ClassAware' in name or 'Balanced' in name
        if class_aware != (head.generation == 'ratio'):
            runner.logger.warning(
                f'AFGHead generation={head.generation!r} with the sampler '
                f"{name}: 'balance' tops classes up relative to instance-"
                "balanced batches, 'ratio' assumes class-balanced ones."
            )

    @torch.no_grad()
    def _stage_one_accuracy(self, runner, head):
        """Per-class accuracy of the stage-one classifier on the validation
        loader (cached features where the loop caches); NaN: no sample."""
        path = self.stage_one_checkpoint or stage_one_checkpoint('AFGHook')
        weight, bias, _ = stage_one_classifier(path, head, 'AFGHook')
        stage_one = LinearTeacher(weight, bias, torch.ones(head.num_classes))
        model = unwrap(runner.model)
        was_training = model.training
        model.eval()
        num = head.num_classes
        seen = torch.zeros(2, num, device=head.fc.weight.device)  # n, hits
        for batch in runner.val_loop.dataloader:
            feats, labels = batch_features(model, batch)
            hits = labels[stage_one.product(feats).argmax(1) == labels]
            seen[0] += torch.bincount(labels, minlength=num).to(seen)
            seen[1] += torch.bincount(hits, minlength=num).to(seen)
        model.train(was_training)
        all_reduce(seen)  # one reduction for both rows
        total, correct = seen
        runner.logger.info(
            f'AFGHook: stage-one validation accuracy '
            f'{float(correct.sum() / total.sum().clamp(min=1)):.4f}, the '
            'reference of the confidence updates'
        )
        return correct / total  # 0 / 0: NaN, no validation sample

    def before_train(self, runner) -> None:
        self._training = True
        head = self._head(runner)
        counts = get_train_class_counts()
        if counts is not None:  # else checked on the statistics' counts
            self._check_setup(runner, head, counts)
        if not self.update_confidence or runner.val_loop is None:
            if self.update_confidence:
                runner.logger.warning(
                    'AFGHook: the run does not validate, so the adaptive '
                    'confidence stays at its initial value'
                )
        elif not isinstance(runner.train_loop, ValidateBeforeSaveLoop):
            raise ValueError(
                'AFGHook updates the confidence after each validation, which '
                f'{type(runner.train_loop).__name__} runs after saving the '
                "epoch's checkpoint; set train_cfg.type='StageTwoTrainLoop' "
                '(it validates first), or update_confidence=False.'
            )

    def before_train_epoch(self, runner) -> None:
        """The statistics, once the loop has cached the features."""
        head = self._head(runner)
        if head.statistics is not None:
            return
        stats, self.statistics_path = load_or_build(
            runner, head, **self.pass_options
        )
        head.set_statistics(stats)
        if bool(head.signed_features) and head.tukey_lambda != 1:
            runner.logger.warning(
                'AFGHead: the trunk gives signed features (LayerNorm-ended);'
                f' Tukey lambda 1 instead of {head.tukey_lambda:g}, which '
                'assumes post-ReLU features'
            )
        expected = get_train_class_counts()
        if expected is None:
            self._check_setup(runner, head, head.class_counts)
        elif list(expected) != head.class_counts:
            raise ValueError(
                'AFGHook: the statistics count other class sizes than the '
                f'training set (e.g. {head.class_counts[:5]} vs '
                f'{list(expected)[:5]}); the statistics must come from the '
                'stage-two training set.'
            )

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.statistics_path is not None:
            rel = osp.relpath(self.statistics_path, runner.work_dir)
            checkpoint.setdefault('meta', {})['afg_statistics'] = rel

    def after_train(self, runner) -> None:
        self._training = False

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        """Update s_c from this validation and log it."""
        if not self.update_confidence or not self._training:
            return
        if 'lt/per_class' not in (metrics or {}):
            raise KeyError(
                "AFGHook: the validation metrics lack 'lt/per_class' "
                "(per-class accuracy); add dict(type='LongTailAccuracy') to "
                'val_evaluator, or pass update_confidence=False.'
            )
        acc = torch.as_tensor(metrics['lt/per_class'], dtype=torch.float32)
        head = self._head(runner)
        reference = getattr(head, 'reference_acc', None)
        if reference is not None and not bool(torch.isfinite(reference).any()):
            reference.copy_(self._stage_one_accuracy(runner, head))
        before = head.confidence.clone()
        head.update_confidence(acc / 100.0, runner.iter)
        moved = int((head.confidence != before).sum())
        runner.logger.info(
            f'AFGHook: confidence update {int(head.num_confidence_updates)}'
            f' moved {moved} tail scores; mean s = '
            f'{float(head.confidence.mean()):.3f}'
        )
        tail = torch.nonzero(head.statistics.tail).flatten().tolist()
        scalars = {f'afg/s_c/{c}': float(head.confidence[c]) for c in tail}
        if hasattr(head.distiller, 'beta'):
            scalars['afg/beta'] = float(head.distiller.beta())
        scalars['afg/confidence_updates'] = int(head.num_confidence_updates)
        runner.visualizer.add_scalars(scalars, step=runner.iter)
