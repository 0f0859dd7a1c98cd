"""The in-process cases of ``benchmarks/bad_inputs.py``.

Each case takes an empty folder, gives one bad input to the code that
reads it and returns what the user is told (a warning's text), or None
where nothing is said; an error it raises is what the user sees.
"""

import functools
import http.server
import io
import logging
import os
import os.path as osp
import threading
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

import glag_mm  # noqa: F401  (registers the safe loaders)
from glag_mm.core.file_stamp import seal
from glag_mm.core.statistics_builder import StatisticsBuilder
from glag_mm.safe_load import TRUST_ENV

KEY = 'k' * 32
Case = Tuple[
    str, Callable[[str], Optional[str]], Tuple[str, ...], Tuple[str, ...]
]
CASES: List[Case] = []


class Payload:
    """Unpickling it prints PAYLOAD RAN."""

    def __reduce__(self):
        return (exec, ("print('PAYLOAD RAN')",))


def case(name, expect=(), forbid=()):
    def register(fn):
        CASES.append((name, fn, tuple(expect), tuple(forbid)))
        return fn

    return register


def _checkpoint(folder, payload=False, name='epoch_1.pth'):
    path = osp.join(folder, name)
    state = {
        'backbone.w': torch.arange(64.0),
        'head.fc.weight': torch.ones(3, 4),
    }
    meta = dict(note=Payload()) if payload else {}
    torch.save(dict(state_dict=state, meta=meta), path)
    return path


def _flip(path, member, offset=None):
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = next(
            i for i in archive.infolist() if i.filename.endswith(member)
        )
    data = bytearray(open(path, 'rb').read())
    start = info.header_offset
    name_len, extra_len = struct.unpack(
        '<HH', bytes(data[start + 26 : start + 30])
    )
    at = start + 30 + name_len + extra_len + (offset or info.file_size // 2)
    data[at] ^= 0x10
    open(path, 'wb').write(bytes(data))


def _load(path):
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.load_checkpoint(path, map_location='cpu')


# ---------------------------------------------------------------- checkpoints
@case(
    'local checkpoint with a pickle payload',
    ('needs builtins.exec', TRUST_ENV),
)
def local_payload(folder):
    _load(_checkpoint(folder, payload=True))


for _kind in ('truncated', 'empty', 'random', 'text'):

    @case(
        f'{_kind} checkpoint file',
        ('is unreadable', 'torch.save'),
        (TRUST_ENV,),
    )
    def damaged(folder, kind=_kind):
        path = _checkpoint(folder)
        data = open(path, 'rb').read()
        content = {
            'truncated': data[: len(data) // 2],
            'empty': b'',
            'random': np.random.default_rng(0).bytes(4096),
            'text': b'not a checkpoint\n',
        }[kind]
        open(path, 'wb').write(content)
        _load(path)


for _member in ('/data/0', '/data.pkl'):

    @case(
        f'checkpoint with a flipped bit in {_member[1:]}',
        ('is unreadable', 'fails its CRC check (damaged bytes)'),
        (TRUST_ENV, 'needs '),
    )
    def bit_flip(folder, member=_member):
        path = _checkpoint(folder)
        _flip(path, member)
        _load(path)


@case('missing checkpoint file', ('does not exist', 'load_from / resume'))
def missing(folder):
    _load(osp.join(folder, 'absent.pth'))


# ------------------------------------------------------------ remote schemes
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder, load: Callable[[str], None]):
    """Serve ``folder`` on 127.0.0.1 while ``load(base_url)`` runs."""
    handler = functools.partial(_Quiet, directory=folder)
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    old = {k: os.environ.pop(k, None) for k in ('http_proxy', 'HTTP_PROXY')}
    os.environ['TORCH_HOME'] = osp.join(folder, 'torch')
    try:
        load(f'http://127.0.0.1:{httpd.server_port}')
    finally:
        httpd.shutdown()
        httpd.server_close()
        os.environ.pop('TORCH_HOME')
        os.environ.update({k: v for k, v in old.items() if v is not None})


@case(
    'http:// checkpoint with a payload (and again from the hub cache)',
    ('needs builtins.exec', 'evil.pth', 'downloaded to', 'hub/checkpoints'),
)
def http_payload(folder):
    _checkpoint(folder, payload=True, name='evil.pth')

    def twice(base):
        for _ in range(2):
            try:
                _load(f'{base}/evil.pth')
            except Exception as error:
                last = error
        raise last

    _serve(folder, twice)


@case(
    'torchvision:// name of a checkpoint with a payload',
    ('needs builtins.exec', 'evil.pth', 'downloaded to'),
)
def zoo_payload(folder):
    import glag_mm.remote_load as remote

    _checkpoint(folder, payload=True, name='evil.pth')
    saved = remote.get_torchvision_models
    try:
        _serve(
            folder,
            lambda base: (
                setattr(
                    remote,
                    'get_torchvision_models',
                    lambda: {'t': f'{base}/evil.pth'},
                ),
                _load('torchvision://t'),
            ),
        )
    finally:
        remote.get_torchvision_models = saved


# ----------------------------------------------------------- stage-two files
def _statistics(seed=0):
    gen = torch.Generator().manual_seed(seed)
    builder = StatisticsBuilder(3, 6)
    labels = torch.tensor([0] * 9 + [1] * 5 + [2] * 3)
    builder.add(torch.randn(17, 6, generator=gen), labels, torch.arange(17))
    return builder.finalize(all_gather=False)


def _rebuilt(path, what='AFG class statistics') -> Optional[str]:
    """The warning of usable_stage_two_file, None where the file is used."""
    from glag_mm.engine.files import usable_stage_two_file

    stream = io.StringIO()
    logger = logging.getLogger('bad_inputs_probe')
    logger.addHandler(logging.StreamHandler(stream))
    logger.propagate = False
    try:
        usable = usable_stage_two_file(path, KEY, what, logger)
    finally:
        logger.handlers.clear()
    return None if usable else stream.getvalue()


def _stats_file(folder):
    path = osp.join(folder, f'{KEY}.pth')
    _statistics().save(path, key=KEY)
    return path


def _truncate(path, size):
    data = open(path, 'rb').read()[:size]
    open(path, 'wb').write(data)


_STATS = {
    'another run (another key)': lambda p: _statistics(1).save(
        p, key='x' * 32
    ),
    'truncated': lambda p: _truncate(p, 300),
    'random bytes': lambda p: open(p, 'wb').write(
        np.random.default_rng(0).bytes(999)
    ),
    'empty': lambda p: open(p, 'wb').close(),
    'a flipped bit in a table': lambda p: _flip(p, '/data/1', 1),
    'a short table saved again': lambda p: torch.save(
        dict(torch.load(p, weights_only=True), factor_size=torch.zeros(1)), p
    ),
}
for _how, _damage in _STATS.items():

    @case(
        f'statistics file: {_how}',
        (f'{KEY}.pth', 'is not used: ', 'It is rebuilt'),
    )
    def stats(folder, damage=_damage):
        path = _stats_file(folder)
        damage(path)
        return _rebuilt(path)


@case(
    'statistics file with a pickle payload',
    ('is not used: it holds a pickled type outside the allow-list',),
    (TRUST_ENV,),
)
def stats_payload(folder):
    path = _stats_file(folder)
    data = torch.load(path, weights_only=True)
    data['info'] = dict(data['info'], note=Payload())
    torch.save(data, path)
    return _rebuilt(path)


@case('feature cache with its labels reversed', ("'labels' does not match",))
def relabelled(folder):
    path = osp.join(folder, f'{KEY}.pth')
    state = seal(dict(features=torch.randn(6, 4), labels=torch.arange(6)), KEY)
    torch.save(dict(state, labels=state['labels'].flip(0)), path)
    return _rebuilt(path, 'feature cache')


@case(
    'feature cache folder that cannot be created',
    ('feature_cache', 'writable'),
)
def unwritable(folder):
    from glag_mm.engine.files import usable_stage_two_file

    open(osp.join(folder, 'file'), 'w').close()
    path = osp.join(folder, 'file', 'feature_cache', f'{KEY}.pth')
    usable_stage_two_file(path, KEY, 'feature cache')


@case(
    'stage-two file whose write fails',
    ('could not write', f'{KEY}.pth', 'free space'),
)
def failed_write(folder):
    from glag_mm.engine.files import write_once_per_node

    def write(tmp):
        raise RuntimeError(
            '[enforce fail at inline_container.cc:747] . open file failed'
        )

    write_once_per_node(osp.join(folder, f'{KEY}.pth'), write)
