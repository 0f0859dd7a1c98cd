"""What a stage-two file (AFG statistics, feature cache) says it is.

:func:`seal` adds a stamp to the dict that is saved: the key the file was
built for (trunk weights, data, pipeline, settings) and the CRC-32 of each
top-level tensor, computed once at write time. :func:`stamp_problem` checks
both on the loaded (memory-mapped) dict: the tensors are read once, in
chunks hashed by several threads (``benchmarks/crc_cost.py`` prints the cost
against a read of the file). A file copied from another run (another key),
edited and saved again (a checksum no longer matches) or damaged is told
apart from a usable one.
"""

from typing import Any, Dict, Optional

import torch

from .zip_crc import crc32_of_spans

#: the entry of a stage-two file's dict that holds its stamp
STAMP = 'glag_mm_file'


def tensor_crc32(tensor: torch.Tensor) -> int:
    """CRC-32 of a tensor's bytes in memory order (no copy when contiguous,
    as a memory-mapped tensor is)."""
    data = tensor.detach().cpu().contiguous().reshape(-1)
    data = data.view(torch.uint8).numpy()
    view = memoryview(data).cast('B')
    try:
        return crc32_of_spans(view, [(0, len(view))])[0]
    finally:
        view.release()


def seal(payload: Dict[str, Any], key: str) -> Dict[str, Any]:
    """``payload`` plus its stamp: ``key`` and each tensor's CRC-32."""
    crcs = {
        name: tensor_crc32(value)
        for name, value in payload.items()
        if isinstance(value, torch.Tensor)
    }
    return {**payload, STAMP: dict(key=str(key), crc32=crcs)}


def stamp_problem(data: Any, key: str) -> Optional[str]:
    """Why ``data`` (a loaded stage-two dict) is not the file for ``key``,
    or None where its stamp matches and every checksum holds."""
    stamp = data.get(STAMP) if isinstance(data, dict) else None
    if not isinstance(stamp, dict) or not isinstance(stamp.get('crc32'), dict):
        return (
            'it carries no stamp of what it holds (not written by this '
            'version of glag_mm)'
        )
    if stamp.get('key') != key:
        return (
            f'it was built for other weights, data or settings (key '
            f'{stamp.get("key")!r}, this run needs {key!r})'
        )
    for name, crc in stamp['crc32'].items():
        value = data.get(name)
        if not isinstance(value, torch.Tensor):
            return f'its {name!r} is missing'
        if tensor_crc32(value) != crc:
            return (
                f'its {name!r} does not match the checksum written with it '
                '(damaged or edited)'
            )
    return None
