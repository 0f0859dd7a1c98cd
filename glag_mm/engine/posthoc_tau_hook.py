"""Carries what validation chose (post-hoc tau, tau-norm's tau, the
temperature) to the test split."""

from typing import Dict, List, Optional

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ..evaluation import LongTailAccuracy
from ..evaluation.posthoc_tau import VAL_CHOSEN, get_selected, set_selected
from .feature_cache import unwrap


def _metrics(loop, from_val: bool = False) -> List[LongTailAccuracy]:
    """A loop's LongTailAccuracy metrics (``from_val``: those with an option
    chosen on validation)."""
    evaluator = getattr(loop, 'evaluator', None)
    return [
        m
        for m in getattr(evaluator, 'metrics', [])
        if isinstance(m, LongTailAccuracy) and (m.from_val or not from_val)
    ]


def _tell_metrics(runner, loop, split: str) -> None:
    """Tell the loop's metrics their split and give tau_norm ones the head's
    weight norms and bias."""
    for metric in _metrics(loop, True):
        metric.set_evaluated_split(split)
    users = [
        m
        for m in _metrics(loop)
        if m.tau_norm is not None or 'tau_norm' in m.from_val
    ]
    if not users:
        return
    head = getattr(unwrap(runner.model), 'head', None)
    if not hasattr(head, 'weight_norms'):
        raise ValueError(
            'LongTailAccuracy(tau_norm=...) rescales the classifier by its '
            f'weight norms: the model head ({type(head).__name__}) has no '
            "weight_norms(); use model.head=dict(type='TauNormHead', ...)."
        )
    for metric in users:
        metric.set_classifier(head.weight_norms(), head.classifier_bias())


@HOOKS.register_module()
class PosthocTauHook(Hook):
    """Choose post-hoc tau (and tau-norm's tau, the temperature) on
    validation, keep it, apply it on test (docs/plugin.md, "Post-hoc logit
    adjustment").

    Tells ``LongTailAccuracy`` of val to choose and of test to apply (a
    test metric set to choose is refused); keeps each validation's choice,
    with the weights' iteration, in checkpoint ``meta`` and publishes a
    loaded checkpoint's choice for its own weights; gives ``tau_norm``
    metrics the head's weight norms and bias. The tools add the hook.
    """

    priority = 'NORMAL'  # after RuntimeInfoHook, before CheckpointHook
    _loaded: Optional[dict] = None  # meta iter / epoch of loaded weights
    _training = False  # between before_train and after_train

    def _position(self, runner) -> tuple:
        """(iter, epoch) of the weights just validated: the run's in
        training, else the loaded checkpoint's (``runner.iter`` would build
        the train loop)."""
        if self._training:
            return runner.iter, runner.epoch
        loaded = self._loaded or {}
        return loaded.get('iter'), loaded.get('epoch')

    def before_test_epoch(self, runner) -> None:
        """The test metrics apply what validation chose."""
        _tell_metrics(runner, runner.test_loop, 'test')

    def before_val_epoch(self, runner) -> None:
        """The validation metrics choose."""
        _tell_metrics(runner, runner.val_loop, 'val')

    def before_train(self, runner) -> None:
        self._training = True
        for name in VAL_CHOSEN:
            record = get_selected(name)
            if record is not None and record['iter'] != runner.iter:
                set_selected(name, None)  # chosen for other weights

    def after_train(self, runner) -> None:
        self._training = False

    def after_val_epoch(
        self, runner, metrics: Optional[Dict[str, float]] = None
    ) -> None:
        choosers = [
            m for m in _metrics(runner.val_loop, True) if m.selects_tau()
        ]
        if not choosers or not metrics:
            return
        if len(choosers) > 1:
            raise ValueError(
                'PosthocTauHook: val_evaluator has several LongTailAccuracy('
                "posthoc_tau='val') metrics; keep one."
            )
        prefix = choosers[0].prefix
        iteration, epoch = self._position(runner)
        for name, (_, field) in VAL_CHOSEN.items():
            key = f'{name}_selected'
            key = f'{prefix}/{key}' if prefix else key
            if key in metrics:
                record = {field: metrics[key], 'iter': iteration}
                set_selected(name, dict(record, epoch=epoch))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        for name, (key, _) in VAL_CHOSEN.items():
            record = get_selected(name)
            if record is not None:
                meta[key] = record

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        self._loaded = dict(iter=meta.get('iter'), epoch=meta.get('epoch'))
        for name, (key, field) in VAL_CHOSEN.items():
            record = meta.get(key)
            if record is None:
                continue
            what = f'{_NAMES.get(name, name)} {record[field]:g}'
            if record.get('iter') != meta.get('iter'):
                runner.logger.warning(
                    f'PosthocTauHook: the checkpoint holds {what} chosen at '
                    f'iteration {record.get("iter")}, not for its own weights '
                    f'(iteration {meta.get("iter")}); it is not applied.'
                )
                continue
            set_selected(name, record)
            runner.logger.info(
                f'PosthocTauHook: {what} (chosen on the validation split) '
                'loaded with the checkpoint'
            )


_NAMES = dict(posthoc_tau='post-hoc tau', tau_norm='tau-norm tau')
