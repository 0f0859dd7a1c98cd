"""A frozen trunk for stage two, around any mmpretrain backbone.

Stage two (docs/method.md, stage two item 1) trains only the classifier on
the stage-one trunk. Backbones freeze themselves in different ways
(``frozen_stages`` counts different things, ``norm_eval`` exists only on the
BatchNorm ones, a ConvNeXt's last norm or a ViT's final LayerNorm are outside
what ``frozen_stages`` reaches, and dropout / DropPath are live in training
mode). :class:`FrozenBackbone` freezes any of them the same way: no gradients
and eval mode whatever ``train()`` is called with, so features are a function
of the image and the weights alone and a feature cache is valid by
construction.

The stage-one weights arrive through :class:`StageOneInit` (``init_cfg``
``type='StageOne'``), which reads the run's ``stage_one_checkpoint`` (one
config key, ``--cfg-options stage_one_checkpoint=PATH``), published by
:class:`~glag_mm.engine.StageOneCheckpointHook` when the Runner starts.
"""

import copy
import os.path as osp
from typing import Optional

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModule, initialize
from mmengine.registry import WEIGHT_INITIALIZERS
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict
from mmpretrain.registry import MODELS

__all__ = [
    'FrozenBackbone',
    'StageOneInit',
    'stage_one_checkpoint',
    'stage_one_state',
]

#: the message-hub key that carries the run's stage-one checkpoint path.
STAGE_ONE_KEY = 'stage_one_checkpoint'
#: the default initialisation of :class:`FrozenBackbone`.
STAGE_ONE_BACKBONE = dict(type='StageOne', prefix='backbone.', strict=True)


def stage_one_checkpoint(owner: str) -> str:
    """The run's stage-one checkpoint (``cfg.stage_one_checkpoint``).

    Raises:
        FileNotFoundError: no path was given, or it is not a file; the
            message names the config key to set.
    """
    path = MessageHub.get_current_instance().get_info(STAGE_ONE_KEY)
    if not path:
        raise FileNotFoundError(
            f'{owner} needs the stage-one checkpoint: set '
            'stage_one_checkpoint=PATH in the config (or --cfg-options '
            'stage_one_checkpoint=PATH) and keep '
            "dict(type='StageOneCheckpointHook') in custom_hooks."
        )
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{owner}: stage-one checkpoint {path!r} (stage_one_checkpoint) '
            'does not exist; train stage one first or pass its final .pth '
            'with --cfg-options stage_one_checkpoint=PATH.'
        )
    return str(path)


def stage_one_state(path: str, prefix: str = '', owner: str = '') -> dict:
    """The weights of a stage-one checkpoint (through mmengine's
    ``CheckpointLoader``, so the allow-list applies), ``module.`` dropped:
    those under ``prefix``, without it (a ValueError if there are none)."""
    if prefix and not prefix.endswith('.'):
        prefix += '.'
    state = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state = state.get('state_dict', state)
    state = {k.removeprefix('module.'): v for k, v in state.items()}
    part = {
        k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)
    }
    if not part:
        raise ValueError(
            f'{owner}: the stage-one checkpoint {path!r} has no {prefix!r} '
            'weights; point stage_one_checkpoint at the final checkpoint of '
            'stage one.'
        )
    return part


@WEIGHT_INITIALIZERS.register_module(name='StageOne')
class StageOneInit:
    """Load ``prefix``-ed weights of the run's stage-one checkpoint.

    Like mmengine's ``Pretrained`` with ``prefix``, but the file is the
    run's ``stage_one_checkpoint``, read when the weights are initialised
    (after the config was parsed and overridden), not a path fixed in the
    config. Registered in mmengine's root registry, so it is found with or
    without the ``mmpretrain`` scope.

    Args:
        prefix: the part of the stage-one model, e.g. ``'backbone.'`` or
            ``'head.'``.
        strict: refuse missing or unexpected keys.
    """

    def __init__(self, prefix: str, strict: bool = False) -> None:
        self.prefix = prefix
        self.strict = strict
        self.wholemodule = False

    def __call__(self, module: torch.nn.Module) -> None:
        owner = f'StageOne init ({self.prefix}*)'
        path = stage_one_checkpoint(owner)
        state = stage_one_state(path, self.prefix, owner)
        load_state_dict(module, state, strict=self.strict, logger='current')


def _drop_trunk_prefix(module, state_dict, prefix, local_metadata) -> None:
    """Save ``<prefix>trunk.x`` as ``<prefix>x``: a stage-one backbone's
    keys."""
    for key in [k for k in state_dict if k.startswith(prefix + 'trunk.')]:
        state_dict[prefix + key[len(prefix) + 6 :]] = state_dict.pop(key)


def _add_trunk_prefix(module, state_dict, prefix, *args) -> None:
    """Load ``<prefix>x`` (a stage-one backbone's keys) into the trunk."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        if not key.startswith(prefix + 'trunk.'):
            state_dict[prefix + 'trunk.' + key[len(prefix) :]] = (
                state_dict.pop(key)
            )


@MODELS.register_module()
class FrozenBackbone(BaseModule):
    """Any backbone, frozen: no gradients, always in eval mode.

    ``model.backbone = dict(type='FrozenBackbone', backbone=<the stage-one
    backbone dict>)``. Its state dict has the inner backbone's keys (a
    stage-one ``backbone.*`` loads as it is; a stage-two checkpoint has the
    keys a plain backbone would), and its forward runs without autograd.

    Args:
        backbone: the backbone config (any ``MODELS`` backbone).
        init_cfg: default: the ``backbone.*`` weights of the run's
            stage-one checkpoint (:class:`StageOneInit`); None keeps the
            backbone's own initialisation (e.g. its ``init_cfg``).
    """

    def __init__(
        self,
        backbone: dict,
        init_cfg: Optional[dict] = STAGE_ONE_BACKBONE,
    ) -> None:
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise TypeError(
                'FrozenBackbone: backbone must be a backbone config dict '
                f"with a 'type', got {backbone!r}"
            )
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        self.trunk = MODELS.build(backbone)
        self.trunk.requires_grad_(False)
        self.train(False)
        self.register_state_dict_post_hook(_drop_trunk_prefix)
        self.register_load_state_dict_pre_hook(_add_trunk_prefix)

    def train(self, mode: bool = True) -> 'FrozenBackbone':
        """Stay in eval mode (dropout, DropPath, BatchNorm statistics)."""
        return super().train(False)

    def init_weights(self) -> None:
        """The stage-one weights (``init_cfg``), else the backbone's own."""
        if self.init_cfg is None:
            if callable(getattr(self.trunk, 'init_weights', None)):
                self.trunk.init_weights()
        else:
            initialize(self, self.init_cfg)
        self._is_init = True

    def forward(self, inputs: torch.Tensor):
        with torch.no_grad():
            return self.trunk(inputs)
