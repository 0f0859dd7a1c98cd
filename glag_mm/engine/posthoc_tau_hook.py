"""Carries the validation-selected post-hoc tau to the test split."""

import os.path as osp
from typing import Dict, List, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ..evaluation import (
    POSTHOC_TAU_KEY,
    LongTailAccuracy,
    get_selected_posthoc_tau,
    set_selected_posthoc_tau,
)
from .files import last_checkpoint_path, update_last_checkpoint


def _val_tau_metrics(loop) -> List[LongTailAccuracy]:
    """The posthoc_tau='val' metrics of a built loop (runner._val_loop /
    _test_loop: the public properties would build a loop not yet built; a
    loop still a dict or None has none)."""
    evaluator = getattr(loop, 'evaluator', None)
    return [
        m
        for m in getattr(evaluator, 'metrics', [])
        if isinstance(m, LongTailAccuracy) and m.posthoc_from_val
    ]


@HOOKS.register_module()
class PosthocTauHook(Hook):
    """Choose post-hoc tau on validation, keep it, apply it on test.

    For ``LongTailAccuracy(posthoc_tau='val')``: tells the val metric to
    choose and the test metric to apply (a test metric set to choose is
    refused: it would choose on test labels); publishes each validation's
    choice on every rank; writes it into checkpoint ``meta`` with the
    weights' iteration, adding it to the checkpoint saved just before the
    validation (mmengine saves first; rank 0, local files); after a load,
    publishes a checkpoint's tau chosen for those weights. A training run
    forgets a loaded tau until its own validation. The tools add the hook.
    """

    priority = 'NORMAL'  # after RuntimeInfoHook, before CheckpointHook
    _saved_iter: Optional[int] = None  # meta['iter'] of the last save
    _loaded: Optional[dict] = None  # meta iter / epoch of loaded weights

    _training = False  # between before_train and after_train

    def _position(self, runner) -> tuple:
        """(iter, epoch) of the weights just validated: the train loop's in
        a training run; in a val / test run the loaded checkpoint's, else
        None (there ``runner.iter`` / ``runner.epoch`` would build the train
        loop, its dataloader included)."""
        if self._training:
            return runner.iter, runner.epoch
        loaded = self._loaded or {}
        return loaded.get('iter'), loaded.get('epoch')

    def _tell_metrics(self, runner) -> None:
        """The split each posthoc_tau='val' metric evaluates (built loops)."""
        for metric in _val_tau_metrics(runner._test_loop):
            if metric.select_posthoc_tau:
                raise ValueError(
                    "PosthocTauHook: test_evaluator's LongTailAccuracy has "
                    'select_posthoc_tau=True, which would choose tau on the '
                    'test labels; remove it (the hook makes the test metric '
                    'apply the tau chosen on validation).'
                )
            metric.set_evaluated_split('test')
        for metric in _val_tau_metrics(runner._val_loop):
            metric.set_evaluated_split('val')

    before_run = before_val_epoch = before_test_epoch = _tell_metrics

    def before_train(self, runner) -> None:
        self._training = True
        record = get_selected_posthoc_tau()
        if record is not None and record['iter'] != runner.iter:
            set_selected_posthoc_tau(None)  # chosen for other weights

    def after_train(self, runner) -> None:
        self._training = False

    def after_val_epoch(
        self, runner, metrics: Optional[Dict[str, float]] = None
    ) -> None:
        choosers = [
            m for m in _val_tau_metrics(runner._val_loop) if m.selects_tau()
        ]
        if not choosers or not metrics:
            return
        if len(choosers) > 1:
            raise ValueError(
                'PosthocTauHook: val_evaluator has several LongTailAccuracy('
                "posthoc_tau='val') metrics; keep one."
            )
        prefix = choosers[0].prefix
        key = 'posthoc_tau_selected'
        key = f'{prefix}/{key}' if prefix else key
        if key not in metrics:
            return
        iteration, epoch = self._position(runner)
        record = dict(tau=metrics[key], iter=iteration, epoch=epoch)
        set_selected_posthoc_tau(record)
        if iteration is not None and self._saved_iter == iteration:
            self._add_to_last_checkpoint(runner)

    def _add_to_last_checkpoint(self, runner) -> None:
        record = get_selected_posthoc_tau()

        def edit(checkpoint: dict) -> bool:
            if checkpoint.get('meta', {}).get('iter') != record['iter']:
                return False
            checkpoint['meta'][POSTHOC_TAU_KEY] = record
            return True

        path = update_last_checkpoint(runner, edit)  # main process only
        if path is not None:
            runner.logger.info(
                f'PosthocTauHook: post-hoc tau {record["tau"]:g} (chosen on '
                f'the validation split) added to {osp.basename(path)}'
            )
        elif is_main_process() and last_checkpoint_path(runner) is None:
            path = runner.message_hub.get_info('last_ckpt')
            runner.logger.warning(
                f'PosthocTauHook: the last checkpoint {path!r} is not a local '
                'file; the tau chosen after it is only in later checkpoints.'
            )

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        self._saved_iter = meta.get('iter')
        record = get_selected_posthoc_tau()
        if record is not None:
            meta[POSTHOC_TAU_KEY] = record

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        self._loaded = dict(iter=meta.get('iter'), epoch=meta.get('epoch'))
        record = meta.get(POSTHOC_TAU_KEY)
        if record is None:
            return
        if record.get('iter') != meta.get('iter'):
            runner.logger.warning(
                f'PosthocTauHook: the checkpoint holds post-hoc tau '
                f'{record["tau"]:g} chosen at iteration {record.get("iter")}, '
                f'not for its own weights (iteration {meta.get("iter")}); it '
                'is not applied.'
            )
            return
        set_selected_posthoc_tau(record)
        runner.logger.info(
            f'PosthocTauHook: post-hoc tau {record["tau"]:g} (chosen on the '
            'validation split) loaded with the checkpoint'
        )
