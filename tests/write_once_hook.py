"""A test hook: fails the run if a checkpoint file changes after it was
written (glag_mm must never edit a saved checkpoint)."""

import hashlib
from pathlib import Path

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

#: the checkpoints a run writes (CheckpointHook's names)
CHECKPOINTS = ('epoch_', 'iter_', 'best_')


@HOOKS.register_module(name='WriteOnceHook', force=True)
class WriteOnceHook(Hook):
    """After every epoch, validation and the run, on the main process (the
    one that writes checkpoints, so no read races a write): the SHA-256 of
    each checkpoint under the work_dir; a file seen before must be
    unchanged. ``checked`` counts the files it compared, so a test can tell
    it ran."""

    priority = 'LOWEST'
    checked = 0

    def __init__(self) -> None:
        self.seen = {}

    def _check(self, runner, *args, **kwargs) -> None:
        if not is_main_process():
            return
        for path in sorted(Path(runner.work_dir).rglob('*.pth')):
            if not path.name.startswith(CHECKPOINTS):
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if path in self.seen:
                WriteOnceHook.checked += 1
                assert self.seen[path] == digest, f'{path} was rewritten'
            self.seen[path] = digest

    after_train_epoch = after_val_epoch = after_train = _check
