"""Test at the end of a rehearsal (``tools/train.py --smoke``) stage."""

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

__all__ = ['SmokeTestHook']


@HOOKS.register_module()
class SmokeTestHook(Hook):
    """Run the config's test loop once training has finished.

    A rehearsal checks every part of a config that a long run will need,
    the test dataloader and evaluator included, so each stage ends with a
    test on its (small) test subset. ``LOWEST`` priority: the other hooks
    have undone their training set-up (e.g. the feature cache) first.
    """

    priority = 'LOWEST'

    def after_train(self, runner) -> None:
        if runner.test_loop is None:
            return
        metrics = runner.test_loop.run()
        runner.logger.info(f'smoke test metrics: {metrics}')
