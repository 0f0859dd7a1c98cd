"""Files written once per machine and memory-mapped by every rank: stage
two's feature cache and class statistics cost one copy per machine (the
page cache), not one per process."""

import os
import os.path as osp
import socket
from typing import Callable

from mmengine.dist import barrier, get_rank


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
