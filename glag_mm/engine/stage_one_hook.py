"""Publishes the run's stage-one checkpoint (``cfg.stage_one_checkpoint``)."""

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ..models.backbones.frozen_backbone import STAGE_ONE_KEY


@HOOKS.register_module()
class StageOneCheckpointHook(Hook):
    """Hand the stage-one checkpoint path to the parts that load from it.

    Stage two reads one file from stage one: the frozen trunk
    (:class:`~glag_mm.models.FrozenBackbone`), an LWS / initialised head
    (``init_cfg=dict(type='StageOne', prefix='head.')``), the distillation
    teacher and AFG's stage-one reference. Its path is one config key,
    ``stage_one_checkpoint`` (``--cfg-options stage_one_checkpoint=PATH``
    under any tool), read from the Runner's config when the run starts
    (``before_run``, before the Runner initialises the weights) and put in
    the MessageHub; a missing path is reported by whichever part needs it,
    so testing a stage-two checkpoint needs none.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        path = runner.cfg.get(STAGE_ONE_KEY, None)
        runner.message_hub.update_info(STAGE_ONE_KEY, path, resumed=False)
        if path:
            runner.logger.info(f'stage-one checkpoint: {path}')
