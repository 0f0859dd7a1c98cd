"""Files the hooks write, replaced atomically (a temporary file, then
``os.replace``): stage two's feature cache and statistics, written once per
machine and memory-mapped by every rank; and what a validation decided
(AFG's confidence, post-hoc tau), added to the checkpoint mmengine saved
just before it (``after_train_epoch``), which would otherwise lack it."""

import os
import os.path as osp
import socket
from typing import Callable, Optional

import torch
from mmengine.dist import barrier, get_rank, is_main_process
from mmengine.runner.checkpoint import CheckpointLoader


def write_once_per_node(path: str, write: Callable[[str], None]) -> bool:
    """Local rank 0 of each machine (``LOCAL_RANK``; without it rank 0
    only) runs ``write(tmp)`` if ``path`` is missing, renamed atomically;
    every rank waits. True where this process wrote it."""
    wrote = False
    local_rank = int(os.environ.get('LOCAL_RANK', get_rank()))
    if local_rank == 0 and not osp.isfile(path):
        os.makedirs(osp.dirname(path) or '.', exist_ok=True)
        tmp = f'{path}.{socket.gethostname()}.{os.getpid()}.tmp'
        try:
            write(tmp)
            os.replace(tmp, path)
            wrote = True
        finally:
            if osp.exists(tmp):
                os.remove(tmp)
    barrier()
    return wrote


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
