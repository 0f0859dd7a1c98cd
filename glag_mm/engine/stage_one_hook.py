"""Publishes the run's stage-one checkpoint (``cfg.stage_one_checkpoint``)."""

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ..models.backbones.frozen_backbone import STAGE_ONE_KEY


@HOOKS.register_module()
class StageOneCheckpointHook(Hook):
    """Put the config key ``stage_one_checkpoint`` in the MessageHub when
    the run starts, before the weights are initialised, for the trunk, an
    LWS head, the teacher and AFG's reference (docs/architecture.md, "Order
    of events"); whichever part needs it reports a missing one."""

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        path = runner.cfg.get(STAGE_ONE_KEY, None)
        runner.message_hub.update_info(STAGE_ONE_KEY, path, resumed=False)
        if path:
            runner.logger.info(f'stage-one checkpoint: {path}')
