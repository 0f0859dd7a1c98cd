"""Add what a validation decided (AFG's confidence, post-hoc tau) to the
checkpoint mmengine saved just before it (``after_train_epoch``), which
would otherwise never hold it: one atomic rewrite on the main process."""

import os
import os.path as osp
from typing import Callable, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.runner.checkpoint import CheckpointLoader


def last_checkpoint_path(runner) -> Optional[str]:
    """The local file of the runner's last saved checkpoint, or None."""
    path = runner.message_hub.get_info('last_ckpt')
    return path if path and osp.isfile(path) else None


def update_last_checkpoint(
    runner, edit: Callable[[dict], bool]
) -> Optional[str]:
    """On the main process, apply ``edit`` (in place; True if it changed
    anything) to the last local checkpoint and write it back; its path."""
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
