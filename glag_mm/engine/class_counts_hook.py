"""Publishes the training set's class counts for losses, heads and metrics."""

from typing import List, Optional

import numpy as np
from mmengine.hooks import Hook
from mmpretrain.registry import DATASETS, HOOKS

from ..core import check_class_counts
from ..runtime import set_train_class_counts

__all__ = ['ClassCountsHook', 'count_dataset_labels']


def count_dataset_labels(dataset) -> List[int]:
    """Per-class image counts of a (possibly wrapped) mmpretrain dataset.

    ``metainfo['class_counts']`` wins where a dataset provides it (the
    long-tail wrapper and split readers do); otherwise the ground-truth
    labels are counted, over ``len(metainfo['classes'])`` classes when known.
    """
    metainfo = getattr(dataset, 'metainfo', {}) or {}
    if metainfo.get('class_counts') is not None:
        return [int(c) for c in metainfo['class_counts']]
    if not hasattr(dataset, 'get_gt_labels'):
        raise TypeError(
            f'cannot count the labels of {type(dataset).__name__}: it has '
            "neither metainfo['class_counts'] nor get_gt_labels(); pass "
            'class_counts explicitly.'
        )
    labels = np.asarray(dataset.get_gt_labels(), dtype=np.int64)
    classes = metainfo.get('classes')
    minlength = len(classes) if classes else 0
    return np.bincount(labels, minlength=minlength).tolist()


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Count the training labels once and publish them in the MessageHub.

    The Gradual Balanced Loss, the feature generator and the many / medium /
    few metric read the counts of the set the stage trains on (never val or
    test, METHOD.md stage one item 3). In a test-only run the training
    dataset is built from the config just to be counted. glag_mm's
    ``tools/train.py`` and ``tools/test.py`` add this hook when a config
    lacks it.

    Args:
        class_counts: explicit counts that override counting.
    """

    priority = 'VERY_HIGH'

    def __init__(self, class_counts: Optional[List[int]] = None) -> None:
        self.class_counts = (
            None
            if class_counts is None
            else check_class_counts(class_counts).long().tolist()
        )

    def _training_dataset(self, runner):
        loop = runner._train_loop
        if loop is not None and not isinstance(loop, dict):
            return loop.dataloader.dataset
        cfg = runner.cfg.get('train_dataloader')
        if not cfg:
            return None
        dataset = cfg['dataset'] if isinstance(cfg, dict) else cfg.dataset
        return (
            DATASETS.build(dataset) if isinstance(dataset, dict) else (dataset)
        )

    def before_run(self, runner) -> None:
        counts = self.class_counts
        if counts is None:
            dataset = self._training_dataset(runner)
            if dataset is None:
                runner.logger.warning(
                    'ClassCountsHook: no training dataset in the config; '
                    'class counts are not published.'
                )
                return
            counts = count_dataset_labels(dataset)
        check_class_counts(counts, owner='training dataset')
        set_train_class_counts(counts)
        # size count-dependent buffers now, before hooks such as EMAHook
        # copy the model (VERY_HIGH priority runs first)
        for module in runner.model.modules():
            init = getattr(module, 'init_class_counts', None)
            if callable(init):
                init(counts)
        runner.logger.info(
            f'class counts: {len(counts)} classes, {sum(counts)} images, '
            f'max {max(counts)}, min {min(counts)}'
        )
