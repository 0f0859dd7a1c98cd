"""Add what a validation decided to the checkpoint saved just before it.

mmengine's ``CheckpointHook`` saves an epoch's checkpoint in
``after_train_epoch``, before that epoch's validation runs, so a decision
taken from the validation (AFG's confidence update, the post-hoc tau chosen
on the validation split) would otherwise reach only the next checkpoint and
never the last one. :func:`update_last_checkpoint` rewrites that file once,
on the main process, through an atomic rename.
"""

import os
import os.path as osp
from typing import Callable, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['last_checkpoint_path', 'update_last_checkpoint']


def last_checkpoint_path(runner) -> Optional[str]:
    """The local file of the runner's last saved checkpoint, or None."""
    path = runner.message_hub.get_info('last_ckpt')
    return path if path and osp.isfile(path) else None


def update_last_checkpoint(
    runner, edit: Callable[[dict], bool]
) -> Optional[str]:
    """Apply ``edit`` to the last checkpoint and write it back.

    Args:
        runner: the Runner whose ``last_ckpt`` is updated.
        edit: changes the loaded checkpoint dict in place and returns
            whether it changed anything (False: the file is left as it is).

    Returns:
        The path written, or None (not the main process, no local file, or
        nothing to change).
    """
    path = last_checkpoint_path(runner)
    if not is_main_process() or path is None:
        return None
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    if not edit(checkpoint):
        return None
    tmp = f'{path}.{os.getpid()}.tmp'
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)
    return path
