"""Stop training at the first NaN or Inf, before a checkpoint keeps it.

Each training iteration :class:`NonFiniteCheckHook` checks the trunk's
output (not run on cached features), the ``head.fc`` input (generated
features included) and output, and every loss term, with one host sync, in
``after_train_iter`` at the highest priority, so that the iteration's
``CheckpointHook`` never runs. The tools add it to every training config.
"""

from functools import partial
from typing import List, Tuple

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from .feature_cache import unwrap


class NonFiniteError(FloatingPointError):
    """A NaN or Inf in training; the message names the iteration and place."""


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Raise on non-finite features, logits or losses during training."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._checks: List[Tuple[str, torch.Tensor]] = []
        self._active = False
        self._handles = []

    def before_train(self, runner) -> None:
        model = unwrap(runner.model)
        name = 'backbone' if getattr(model, 'neck', None) is None else 'neck'
        trunk = getattr(model, name, None)
        fc = getattr(getattr(model, 'head', None), 'fc', None)
        fc_input = 'features entering the head (head.fc input)'
        for module, inputs, output in (
            (trunk, None, f'trunk features ({name} output)'),
            (fc, fc_input, 'head logits (head.fc output)'),
        ):
            if isinstance(module, torch.nn.Module):
                on_forward = partial(self._on_forward, inputs, output)
                self._handles.append(module.register_forward_hook(on_forward))

    def _on_forward(self, inputs, output, module, args, out) -> None:
        if inputs:
            self._record(inputs, args)
        self._record(output, out)

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _record(self, place: str, value) -> None:
        """Queue one finiteness flag per float tensor in ``value`` (tensors,
        nested in tuples / lists; read back at once)."""
        if not self._active:
            return
        if isinstance(value, (list, tuple)):
            for item in value:
                self._record(place, item)
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            self._checks.append((place, torch.isfinite(value.detach()).all()))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        self._checks = []
        self._active = True

    def after_train_iter(
        self, runner, batch_idx: int, data_batch=None, outputs=None
    ) -> None:
        for name, value in (outputs or {}).items():
            kind = 'loss' if 'loss' in name else 'model output'
            if isinstance(value, (int, float)):
                value = torch.tensor(float(value))
            self._record(f'{kind} {name!r}', value)
        self._active = False
        checks, self._checks = self._checks, []
        if not checks:
            return
        device = checks[0][1].device
        flags = torch.stack([f.to(device) for _, f in checks]).cpu()
        if bool(flags.all()):  # one host sync for every check
            return
        place = checks[int((~flags).nonzero()[0])][0]
        batches = len(getattr(runner.train_loop, 'dataloader', ()))
        where = f'epoch {runner.epoch + 1}, batch {batch_idx + 1}'
        where += f'/{batches}' if batches else ''
        raise NonFiniteError(
            f'non-finite value (NaN or Inf) in the {place} at training '
            f'iteration {runner.iter + 1} ({where}); '
            'training stopped before this iteration could write a '
            'checkpoint. Look for fp16 overflow (train without --amp / '
            'AmpOptimWrapper), a learning rate that is too high '
            '(optim_wrapper.optimizer.lr), NaN / Inf in the input data, '
            'or NaN weights in the checkpoint the model was loaded from.'
        )
