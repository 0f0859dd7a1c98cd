"""How the statistics pass combines ranks: an all-gather of tensors."""

from typing import Callable, List, Optional

import torch
import torch.distributed as dist
from torch import Tensor

#: ``all_gather(tensor) -> [tensor from rank 0, rank 1, ...]``; every rank
#: passes a tensor of the same shape and dtype (``mmengine.dist.all_gather``
#: has this contract).
AllGather = Callable[[Tensor], List[Tensor]]


def _torch_all_gather(tensor: Tensor) -> List[Tensor]:
    """All-gather through ``torch.distributed`` (gloo on CPU, NCCL on GPU)."""
    world = dist.get_world_size()
    if dist.get_backend() == 'nccl':
        device = torch.device('cuda', torch.cuda.current_device())
    else:
        device = torch.device('cpu')
    send = tensor.to(device).contiguous()
    out = [torch.empty_like(send) for _ in range(world)]
    dist.all_gather(out, send)
    return [t.to(tensor.device) for t in out]


def resolve_all_gather(all_gather) -> Optional[AllGather]:
    """The gather to use: a callable, None (torch.distributed when it runs
    with more than one process, else none) or False (none)."""
    if all_gather is False:
        return None
    if all_gather is None or all_gather is True:
        if (
            dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            return _torch_all_gather
        return None
    if not callable(all_gather):
        raise TypeError(
            'all_gather must be a callable tensor -> list of tensors '
            f'(one per rank), None or False; got {all_gather!r}'
        )
    return all_gather
