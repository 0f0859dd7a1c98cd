"""A test hook: fails the run if a checkpoint file changes after it was
written (glag_mm must never edit a saved checkpoint)."""

import hashlib
from pathlib import Path

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module(name='WriteOnceHook', force=True)
class WriteOnceHook(Hook):
    """After every epoch, validation and the run: the SHA-256 of each
    ``*.pth`` under the work_dir; a file seen before must be unchanged.
    ``checked`` counts the files it compared, so a test can tell it ran."""

    priority = 'LOWEST'
    checked = 0

    def __init__(self) -> None:
        self.seen = {}

    def _check(self, runner, *args, **kwargs) -> None:
        for path in sorted(Path(runner.work_dir).rglob('*.pth')):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if path in self.seen:
                WriteOnceHook.checked += 1
                assert self.seen[path] == digest, f'{path} was rewritten'
            self.seen[path] = digest

    after_train_epoch = after_val_epoch = after_train = _check
