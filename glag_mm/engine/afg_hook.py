"""Statistics pass and confidence updates for :class:`AFGHead`.

Two loop events drive the Adaptive Feature Generator (METHOD.md stage two):

* before training, one streaming pass of the frozen model over the
  training set, with the validation pipeline (no random augmentation),
  fills the head's class statistics (item 3); every rank reads its share
  and the bank gathers them, so all ranks hold the same statistics. The
  pass is skipped when the statistics came back with a checkpoint;
* after each validation (never a test), the per-class accuracy of the
  validation split updates the adaptive confidence (item 6).

mmengine saves the epoch's checkpoint *before* validating, so a run resumed
from it never saw that validation's update. The hook therefore re-runs it
on resume (model, data and metric are deterministic there), which is what
makes a resumed stage two continue exactly like the uninterrupted one.
"""

import copy
from functools import partial
from typing import Any, Iterator, Optional, Tuple

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.registry import FUNCTIONS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmpretrain.registry import DATASETS, HOOKS
from torch import Tensor

from ..runtime import get_train_class_counts
from .feature_cache import FeatureTensorDataset, iter_trunk_features, unwrap

__all__ = ['AFGHook']


def _find_pipeline(cfg: Any) -> Optional[list]:
    """The first ``pipeline`` of a dataset config, through wrappers."""
    while isinstance(cfg, dict):
        if cfg.get('pipeline') is not None:
            return cfg['pipeline']
        cfg = cfg.get('dataset')
    return None


def _set_pipeline(cfg: Any, pipeline: list) -> bool:
    """Replace every ``pipeline`` of a dataset config (and its wrapped)."""
    found = False
    if isinstance(cfg, dict):
        if 'pipeline' in cfg:
            cfg['pipeline'] = copy.deepcopy(pipeline)
            found = True
        if isinstance(cfg.get('dataset'), dict):
            found = _set_pipeline(cfg['dataset'], pipeline) or found
    return found


@HOOKS.register_module()
class AFGHook(Hook):
    """Fill :class:`~glag_mm.models.heads.AFGHead`'s statistics; adapt s_c.

    Args:
        pipeline: pipeline of the statistics pass; default the validation
            dataloader's (else the test dataloader's), i.e. the training
            images without random augmentation.
        batch_size: batch size of the pass (default the training one).
        num_workers: workers of the pass (default the training ones).
        update_confidence: update s_c after each validation.
        metric_key: the metric holding per-class accuracy in percent, one
            entry per class (:class:`~glag_mm.evaluation.LongTailAccuracy`
            reports ``'lt/per_class'``).
        revalidate_on_resume: on resume, re-run the validation that followed
            the checkpoint (see the module docstring) so the confidence
            update it made is not lost.
        progress: draw a progress bar on rank 0.
    """

    priority = 'NORMAL'

    def __init__(
        self,
        pipeline: Optional[list] = None,
        batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
        update_confidence: bool = True,
        metric_key: str = 'lt/per_class',
        revalidate_on_resume: bool = True,
        progress: bool = True,
    ) -> None:
        if pipeline is not None and not isinstance(pipeline, (list, tuple)):
            raise TypeError('AFGHook: pipeline must be a list of transforms')
        if batch_size is not None and (
            not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(
                f'AFGHook: batch_size must be >= 1, got {batch_size!r}'
            )
        self.pipeline = None if pipeline is None else list(pipeline)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.update_confidence = update_confidence
        self.metric_key = metric_key
        self.revalidate_on_resume = revalidate_on_resume
        self.progress = progress

    @staticmethod
    def _head(runner):
        head = getattr(unwrap(runner.model), 'head', None)
        if not hasattr(head, 'update_confidence') or not hasattr(
            head, 'add_statistics'
        ):
            raise TypeError(
                'AFGHook drives an AFGHead, but the model head is '
                f"{type(head).__name__}; set model.head.type='AFGHead' or "
                'remove AFGHook.'
            )
        return head

    # ------------------------------------------------------------------
    # statistics pass
    # ------------------------------------------------------------------
    def _stats_pipeline(self, runner) -> list:
        if self.pipeline is not None:
            return self.pipeline
        for key in ('val_dataloader', 'test_dataloader'):
            loader = runner.cfg.get(key)
            pipeline = (
                _find_pipeline(loader.get('dataset'))
                if isinstance(loader, dict)
                else None
            )
            if pipeline is not None:
                return pipeline
        raise ValueError(
            'AFGHook: no validation or test pipeline in the config to read '
            'the training set without augmentation; pass '
            'pipeline=[...] to AFGHook.'
        )

    def _iter_cached(
        self, dataset: FeatureTensorDataset, batch_size: int
    ) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
        rank, world = get_dist_info()
        idx = torch.arange(rank, len(dataset), world)
        for a in range(0, idx.numel(), batch_size):
            part = idx[a : a + batch_size]
            yield dataset.features[part], dataset.labels[part], part

    def _source(self, runner) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
        train_cfg = runner.cfg.get('train_dataloader')
        if not isinstance(train_cfg, dict) or 'dataset' not in train_cfg:
            raise ValueError(
                'AFGHook: the config has no train_dataloader.dataset to run '
                'the statistics pass on; build the Runner from a config.'
            )
        pipeline = self._stats_pipeline(runner)
        batch_size = self.batch_size or train_cfg.get('batch_size', 32)
        live = runner.train_loop.dataloader.dataset
        if isinstance(live, FeatureTensorDataset) and (
            _find_pipeline(train_cfg['dataset']) == pipeline
        ):
            runner.logger.info(
                'AFGHook: statistics from the feature cache (its pipeline '
                'is the statistics pipeline)'
            )
            return self._iter_cached(live, batch_size)
        dataset_cfg = copy.deepcopy(train_cfg['dataset'])
        if not _set_pipeline(dataset_cfg, pipeline):
            raise ValueError(
                'AFGHook: the training dataset config has no pipeline to '
                'replace with the statistics pipeline'
            )
        dataset = DATASETS.build(dataset_cfg)
        collate_cfg = dict(train_cfg.get('collate_fn', None) or {})
        collate_type = collate_cfg.pop('type', 'pseudo_collate')
        collate = (
            FUNCTIONS.get(collate_type)
            if isinstance(collate_type, str)
            else collate_type
        )
        if collate_cfg:
            collate = partial(collate, **collate_cfg)
        workers = self.num_workers
        if workers is None:
            workers = train_cfg.get('num_workers', 0)
        return iter_trunk_features(
            runner.model,
            dataset,
            batch_size=batch_size,
            collate_fn=collate,
            num_workers=workers,
            progress=self.progress,
            desc='AFG statistics pass',
        )

    def _statistics_pass(self, runner, head) -> None:
        head.reset_statistics()
        device = head.fc.weight.device
        for feats, labels, idx in self._source(runner):
            head.add_statistics(
                feats.to(device), labels.to(device), idx.to(device)
            )
        head.finalize_statistics()
        runner.logger.info(
            f'AFGHook: statistics of {int(head.bank.counts.sum())} '
            f'training features, {head.bank.memory_bytes() / 2**20:.1f} '
            'MiB'
        )

    def _check_counts(self, runner, head) -> None:
        expected = get_train_class_counts()
        if expected is not None and list(expected) != head.class_counts:
            raise ValueError(
                'AFGHook: the statistics count other class sizes than the '
                'training set (e.g. '
                f'{head.class_counts[:5]} vs {list(expected)[:5]}); the '
                'statistics must come from the stage-two training set.'
            )

    def _check_sampler(self, runner, head) -> None:
        loader = runner.train_loop.dataloader
        sampler = getattr(loader, 'sampler', None)
        name = type(getattr(sampler, 'sampler', sampler)).__name__
        class_aware = 'ClassAware' in name or 'Balanced' in name
        if class_aware and head.generation == 'balance':
            runner.logger.warning(
                f"AFGHead generation='balance' tops classes up relative to "
                f'instance-balanced batches, but the sampler is {name}; use '
                "generation='ratio' with a class-aware sampler."
            )
        elif not class_aware and head.generation == 'ratio':
            runner.logger.warning(
                f"AFGHead generation='ratio' assumes class-balanced real "
                f"batches, but the sampler is {name}; use 'balance'."
            )

    # ------------------------------------------------------------------
    # confidence
    # ------------------------------------------------------------------
    def _apply(self, runner, metrics: dict) -> None:
        if self.metric_key not in metrics:
            raise KeyError(
                f'AFGHook: the validation metrics lack {self.metric_key!r} '
                '(per-class accuracy); add '
                "dict(type='LongTailAccuracy') to val_evaluator or set "
                'metric_key, or pass update_confidence=False.'
            )
        acc = torch.as_tensor(metrics[self.metric_key], dtype=torch.float32)
        head = self._head(runner)
        before = head.confidence.clone()
        head.update_confidence(acc / 100.0, runner.iter)
        moved = int((head.confidence != before).sum())
        runner.logger.info(
            f'AFGHook: confidence update {int(head.num_confidence_updates)}'
            f' moved {moved} tail scores; mean s = '
            f'{float(head.confidence.mean()):.3f}'
        )

    @staticmethod
    def _val_due_at_checkpoint(runner) -> bool:
        loop = runner.train_loop
        if runner._val_loop is None:
            return False
        if isinstance(loop, EpochBasedTrainLoop):
            pos, last = loop.epoch, loop.max_epochs
        elif isinstance(loop, IterBasedTrainLoop):
            pos, last = loop.iter, loop.max_iters
        else:
            return False
        return (
            pos > 0
            and pos >= loop.val_begin
            and (pos % loop.val_interval == 0 or pos == last)
        )

    def _revalidate(self, runner) -> None:
        """Re-run the validation after the checkpoint, without other hooks."""
        val_loop = runner.val_loop
        model = runner.model
        model.eval()
        with torch.no_grad():
            for batch in val_loop.dataloader:
                outputs = model.val_step(batch)
                val_loop.evaluator.process(
                    data_samples=outputs, data_batch=batch
                )
        metrics = val_loop.evaluator.evaluate(len(val_loop.dataloader.dataset))
        runner.logger.info(
            'AFGHook: resumed run re-validated the checkpoint to replay its '
            'confidence update'
        )
        self._apply(runner, metrics)

    # ------------------------------------------------------------------
    # hook events
    # ------------------------------------------------------------------
    def before_train(self, runner) -> None:
        head = self._head(runner)
        if head.statistics_ready:
            runner.logger.info(
                'AFGHook: class statistics restored from the checkpoint; '
                'skipping the statistics pass'
            )
        else:
            self._statistics_pass(runner, head)
        head._prepare()
        self._check_counts(runner, head)
        self._check_sampler(runner, head)
        if runner._val_loop is None and self.update_confidence:
            runner.logger.warning(
                'AFGHook: the run does not validate, so the adaptive '
                'confidence stays at its initial value'
            )
        if (
            self.update_confidence
            and self.revalidate_on_resume
            and self._val_due_at_checkpoint(runner)
            and int(head.last_update_iter) < runner.iter
        ):
            self._revalidate(runner)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if not self.update_confidence or runner._train_loop is None:
            return
        if isinstance(runner._train_loop, dict):
            return  # a val-only run: nothing is trained
        self._apply(runner, metrics or {})
