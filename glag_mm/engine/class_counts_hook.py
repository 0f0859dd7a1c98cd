"""Publishes the training set's class counts for losses, heads and metrics."""

from typing import List, Optional

from mmengine.hooks import Hook
from mmpretrain.registry import DATASETS, HOOKS

from ..core import check_class_counts
from ..runtime import resolve_class_counts, set_train_class_counts
from .feature_cache import unwrap


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Count the training labels once and publish them in the MessageHub.

    For the losses, heads and metrics that read the counts of the set the
    stage trains on (docs/method.md stage one item 3): the config's
    ``train_dataloader.dataset`` when the run starts (a test-only run too),
    else the train loop's before training; ``class_counts`` overrides.
    Labels outside [0, num_classes) and empty val / test splits are named
    before they are used. The tools add the hook.
    """

    priority = 'VERY_HIGH'

    def __init__(self, class_counts: Optional[List[int]] = None) -> None:
        if class_counts is not None:
            class_counts = check_class_counts(class_counts).long().tolist()
        self.class_counts = class_counts
        self.published = False

    def _dataset_of_config(self, runner):
        """The config's training dataset (built), None without one."""
        cfg = (runner.cfg or {}).get('train_dataloader')
        if self.class_counts is not None or not cfg:
            return None
        dataset = cfg['dataset'] if isinstance(cfg, dict) else cfg.dataset
        return (
            DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        )

    def _publish(self, runner, dataset) -> None:
        head = getattr(unwrap(runner.model), 'head', None)
        num_classes = getattr(head, 'num_classes', None)
        counts = resolve_class_counts(
            self.class_counts,
            num_classes if isinstance(num_classes, int) else None,
            dataset=dataset,
            owner='ClassCountsHook',
        )
        set_train_class_counts(counts)
        self.published = True
        # size count-dependent buffers before e.g. EMAHook copies the model
        for module in runner.model.modules():
            init = getattr(module, 'init_class_counts', None)
            if callable(init):
                init(counts)
        runner.logger.info(
            f'class counts: {len(counts)} classes, {sum(counts)} images, '
            f'max {max(counts)}, min {min(counts)}'
        )

    def before_run(self, runner) -> None:
        self.published = False
        dataset = self._dataset_of_config(runner)
        if dataset is not None or self.class_counts is not None:
            self._publish(runner, dataset)

    def before_train(self, runner) -> None:
        """A Runner built without a config: the train loop's dataset."""
        if not self.published:
            self._publish(runner, runner.train_loop.dataloader.dataset)
        _check_split('val_dataloader', runner.val_loop)

    def before_val(self, runner) -> None:
        self._check_eval(runner, 'val_dataloader', runner.val_loop)

    def before_test(self, runner) -> None:
        self._check_eval(runner, 'test_dataloader', runner.test_loop)

    def _check_eval(self, runner, field: str, loop) -> None:
        if not self.published:
            runner.logger.warning(
                'ClassCountsHook: no training dataset in the config; '
                'class counts are not published.'
            )
        _check_split(field, loop)


def _check_split(field: str, loop) -> None:
    """Name an empty val / test split before its loop runs, not inside
    mmengine's metric after a training epoch."""
    if loop is None or len(loop.dataloader.dataset):
        return
    dataset = loop.dataloader.dataset
    where = ', '.join(
        f'{key}={getattr(dataset, key)!r}'
        for key in ('ann_file', 'data_root')
        if getattr(dataset, key, None)
    )
    raise ValueError(
        f'{field}.dataset ({type(dataset).__name__}'
        f'{": " + where if where else ""}) holds no sample, so there '
        'is nothing to evaluate; point it at a non-empty list or '
        'folder, or change the split settings that emptied it.'
    )
