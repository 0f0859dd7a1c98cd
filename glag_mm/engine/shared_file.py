"""Files written once per machine and memory-mapped by every rank.

Stage two keeps two large read-only tensors: the frozen trunk's features
(:class:`~glag_mm.engine.FeatureCacheHook`) and the class statistics
(:class:`~glag_mm.engine.AFGHook`). Held in each rank's memory they cost one
copy per process; written to a file and loaded with
``torch.load(..., mmap=True)`` they are one copy per machine (the page
cache), whatever the number of ranks.
"""

import os
import os.path as osp
import socket
from typing import Callable

from mmengine.dist import barrier, get_rank

__all__ = ['write_once_per_node']


def write_once_per_node(path: str, write: Callable[[str], None]) -> bool:
    """Let local rank 0 of every machine write ``path`` if it is missing.

    ``write(tmp)`` writes the content to a temporary name in the same
    directory, renamed atomically to ``path``, so a reader never sees a
    partial file (machines sharing a file system may both write; the
    content is the same). Every rank waits until it is there.

    The local rank is ``LOCAL_RANK`` (set by torchrun); without it only
    rank 0 writes, which needs a work_dir shared by the machines.

    Returns:
        True when this process wrote the file.
    """
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
