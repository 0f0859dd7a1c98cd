"""Checkpoints named by a URL or a model-zoo name, read like local ones.

mmengine's remote schemes (``http://``, ``https://``, ``torchvision://`` /
``modelzoo://``, ``open-mmlab://`` / ``openmmlab://``, ``mmcls://``,
``pavi://``, ``s3://`` / ``petrel://``) end in ``torch.load`` without
``weights_only`` (``torch.hub.load_state_dict_from_url`` for the URLs), so a
downloaded file, and every later load of it from torch's hub cache, runs any
code its pickle carries. Each loader here fetches the file as mmengine does
(into ``<torch hub dir>/checkpoints``, reusing a file already there; rank 0
first) and reads it with :func:`glag_mm.safe_load.load_checkpoint_file`:
weights only, the allow-list, the zip CRCs, the ``GLAG_MM_TRUST_CHECKPOINTS``
opt-in, and a refusal naming the URL and the cached file.
:mod:`glag_mm.compat` registers them with ``CheckpointLoader.register_scheme``.
"""

import os
import os.path as osp
import sys
import tempfile
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import (
    get_deprecated_model_names,
    get_external_models,
    get_mmcls_models,
    get_torchvision_models,
)

from .safe_load import load_checkpoint_file


def hub_checkpoint_dir() -> str:
    """Where torch (and mmengine) keep downloaded checkpoints."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def _fetch(url: str, path: str) -> None:
    if osp.isfile(path):
        return
    os.makedirs(osp.dirname(path), exist_ok=True)
    try:  # torch writes a temporary file and renames it
        torch.hub.download_url_to_file(url, path, progress=sys.stderr.isatty())
    except OSError as error:  # urllib's URLError / HTTPError included
        raise OSError(
            f'could not download checkpoint {url!r} to {path!r}: {error}'
        ) from error


def load_from_url(
    url: str,
    map_location: Optional[Any] = None,
    model_dir: Optional[str] = None,
):
    """Download ``url`` into the hub cache (rank 0 first; a cached file is
    reused) and load it weights-only."""
    name = osp.basename(urlparse(url).path) or 'checkpoint.pth'
    path = osp.join(model_dir or hub_checkpoint_dir(), name)
    rank, world_size = get_dist_info()
    if rank == 0:
        _fetch(url, path)
    if world_size > 1:
        barrier()
        _fetch(url, path)  # a machine that does not share rank 0's disk
    return load_checkpoint_file(path, map_location=map_location, origin=url)


def _name_after(filename: str, prefixes: Tuple[str, ...]) -> str:
    for prefix in prefixes:
        if filename.startswith(prefix):
            return filename[len(prefix) :]
    return filename


def _zoo_url(filename: str, urls: Dict[str, str], zoo: str) -> str:
    name = filename.split('://', 1)[-1]
    if name not in urls:
        raise KeyError(
            f'checkpoint {filename!r}: {name!r} is not a model of the '
            f'{zoo} list mmengine knows ({len(urls)} names); check the name '
            'or give the URL itself.'
        )
    return urls[name]


def load_from_torchvision(filename: str, map_location: Optional[Any] = None):
    """``torchvision://NAME`` (or ``modelzoo://NAME``) as its URL."""
    url = _zoo_url(filename, get_torchvision_models(), 'torchvision')
    return load_from_url(url, map_location)


def load_from_openmmlab(filename: str, map_location: Optional[Any] = None):
    """``open-mmlab://NAME`` (or ``openmmlab://NAME``): its URL, or its
    file under mmengine's home (``MMENGINE_HOME``)."""
    name = _name_after(filename, ('open-mmlab://', 'openmmlab://'))
    name = get_deprecated_model_names().get(name, name)
    target = _zoo_url(
        f'open-mmlab://{name}', get_external_models(), 'open-mmlab'
    )
    if target.startswith(('http://', 'https://')):
        return load_from_url(target, map_location)
    home = os.getenv(
        'MMENGINE_HOME',
        osp.join(os.getenv('XDG_CACHE_HOME', '~/.cache'), 'mmengine'),
    )
    path = osp.join(osp.expanduser(home), target)
    return load_checkpoint_file(path, map_location, origin=filename)


def load_from_mmcls(filename: str, map_location: Optional[Any] = None):
    """``mmcls://NAME``: the backbone weights of an mmcls checkpoint, with
    the ``backbone.`` prefix removed (as mmengine's loader does)."""
    url = _zoo_url(filename, get_mmcls_models(), 'mmcls')
    checkpoint = load_from_url(url, map_location)
    state = checkpoint.get('state_dict', checkpoint)
    backbone = OrderedDict(
        (key[len('backbone.') :], value)
        for key, value in state.items()
        if key.startswith('backbone.')
    )
    return dict(state_dict=backbone)


def _load_bytes(data: bytes, filename: str, map_location: Optional[Any]):
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, osp.basename(filename) or 'checkpoint.pth')
        with open(path, 'wb') as f:
            f.write(data)
        return load_checkpoint_file(path, map_location, origin=filename)


def load_from_ceph(filename: str, map_location: Optional[Any] = None):
    """``s3://`` / ``petrel://`` through mmengine's petrel file backend."""
    backend = get_file_backend(filename, backend_args={'backend': 'petrel'})
    return _load_bytes(backend.get(filename), filename, map_location)


def load_from_pavi(filename: str, map_location: Optional[Any] = None):
    """``pavi://`` through pavi's model cloud (needs ``pavi``)."""
    try:
        from pavi import modelcloud
    except ImportError as error:
        raise ImportError(
            f'checkpoint {filename!r} needs the pavi package to download'
        ) from error
    model = modelcloud.get(filename[len('pavi://') :])
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, model.name)
        model.download(path)
        return load_checkpoint_file(path, map_location, origin=filename)


#: mmengine's remote prefixes (as it registers them) -> the safe loader
REMOTE_SCHEMES: Dict[Tuple[str, ...], Callable] = {
    ('http://', 'https://'): load_from_url,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    ('mmcls://',): load_from_mmcls,
    ('pavi://',): load_from_pavi,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
}
