"""No code runs from a remote checkpoint: every scheme mmengine loads from.

A loopback HTTP server (127.0.0.1, a free port, stopped after the module
or after 120 s) serves a small checkpoint and a copy whose pickle carries a
``__reduce__`` payload that creates a marker file. Every remote scheme
(http, torchvision://, open-mmlab://, mmcls://, s3://) and torch's hub cache
(``TORCH_HOME`` in a temporary folder) refuses the copy, naming the URL and
the cached file; ``GLAG_MM_TRUST_CHECKPOINTS=1`` lets it run.
"""

import functools
import http.server
import threading

import pytest
import torch
from demo_project import Payload
from mmengine.runner.checkpoint import CheckpointLoader, load_from_http

import glag_mm.remote_load as remote
from glag_mm.safe_load import (
    TRUST_ENV,
    UnreadableCheckpointError,
    UnsafeCheckpointError,
)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """(base URL, served folder, marker path)."""
    root = tmp_path_factory.mktemp('served')
    marker = root.parent / 'MARKER'
    state = {'backbone.w': torch.arange(4.0), 'head.b': torch.ones(2)}
    torch.save(dict(state_dict=state, meta={}), root / 'good.pth')
    evil = dict(state_dict=state, meta=dict(note=Payload(marker)))
    torch.save(evil, root / 'evil.pth')
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    stop = threading.Timer(120, httpd.shutdown)  # stops by itself
    stop.daemon = True
    stop.start()
    yield f'http://127.0.0.1:{httpd.server_port}', root, marker
    stop.cancel()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def hub(tmp_path, monkeypatch, server):
    """A fresh torch hub cache; no proxy between us and the loopback."""
    for name in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine'))
    monkeypatch.delenv(TRUST_ENV, raising=False)
    server[2].unlink(missing_ok=True)
    return tmp_path / 'torch' / 'hub' / 'checkpoints'


def _refused(filename, url, cached, marker):
    with pytest.raises(UnsafeCheckpointError) as error:
        CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    message = str(error.value)
    assert repr(url) in message and repr(str(cached)) in message
    assert 'builtins.exec' in message and f'{TRUST_ENV}=1' in message
    assert not marker.exists()


def test_every_remote_scheme_is_registered_safe():
    for prefixes, loader in remote.REMOTE_SCHEMES.items():
        for prefix in prefixes:
            assert CheckpointLoader._schemes[prefix] is loader


def test_mmengine_http_loader_runs_the_payload(server, hub):
    """Why compat workaround 1 covers URLs: mmengine's own loader runs it."""
    base, _, marker = server
    load_from_http(f'{base}/evil.pth', map_location='cpu')
    assert marker.exists()


def test_http_and_the_hub_cache_refuse_the_payload(server, hub):
    base, _, marker = server
    url = f'{base}/evil.pth'
    _refused(url, url, hub / 'evil.pth', marker)
    assert (hub / 'evil.pth').is_file()  # cached: read again from there
    _refused(url, url, hub / 'evil.pth', marker)
    # a payload already in the hub cache under a good file's name
    (hub / 'good.pth').write_bytes((hub / 'evil.pth').read_bytes())
    _refused(f'{base}/good.pth', f'{base}/good.pth', hub / 'good.pth', marker)


def test_opt_in_runs_the_payload(server, hub, monkeypatch):
    base, _, marker = server
    monkeypatch.setenv(TRUST_ENV, '1')
    with pytest.warns(UserWarning, match=TRUST_ENV):
        CheckpointLoader.load_checkpoint(f'{base}/evil.pth')
    assert marker.exists()


def test_zoo_names_refuse_the_payload(server, hub, monkeypatch):
    base, root, marker = server
    url = f'{base}/evil.pth'
    table = lambda: {'tiny': url}  # noqa: E731
    for name in ('get_torchvision_models', 'get_external_models'):
        monkeypatch.setattr(remote, name, table)
    monkeypatch.setattr(remote, 'get_mmcls_models', table)
    for scheme in ('torchvision', 'modelzoo', 'open-mmlab', 'mmcls'):
        _refused(f'{scheme}://tiny', url, hub / 'evil.pth', marker)
    # open-mmlab:// naming a file under mmengine's home
    local = hub.parent.parent.parent / 'mmengine' / 'zoo' / 'evil.pth'
    local.parent.mkdir(parents=True)
    local.write_bytes((root / 'evil.pth').read_bytes())
    monkeypatch.setattr(
        remote, 'get_external_models', lambda: {'t': 'zoo/evil.pth'}
    )
    _refused('open-mmlab://t', 'open-mmlab://t', local, marker)


def test_s3_refuses_the_payload(server, hub, monkeypatch):
    _, root, marker = server
    data = (root / 'evil.pth').read_bytes()

    class Backend:
        def get(self, filename):
            return data

    monkeypatch.setattr(remote, 'get_file_backend', lambda *a, **k: Backend())
    with pytest.raises(UnsafeCheckpointError, match="'s3://bucket/evil.pth'"):
        CheckpointLoader.load_checkpoint('s3://bucket/evil.pth')
    assert not marker.exists()


def test_good_checkpoints_load_from_every_scheme(server, hub, monkeypatch):
    base, root, _ = server
    url = f'{base}/good.pth'
    want = torch.load(root / 'good.pth', weights_only=True)['state_dict']
    got = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert torch.equal(got['state_dict']['backbone.w'], want['backbone.w'])
    monkeypatch.setattr(remote, 'get_mmcls_models', lambda: {'t': url})
    got = CheckpointLoader.load_checkpoint('mmcls://t', map_location='cpu')
    assert list(got['state_dict']) == ['w']  # backbone prefix removed
    assert torch.equal(got['state_dict']['w'], want['backbone.w'])


def test_damaged_download_named_with_its_cache(server, hub):
    base, _, _ = server
    hub.mkdir(parents=True)
    (hub / 'good.pth').write_bytes(b'<html>proxy error</html>')
    with pytest.raises(UnreadableCheckpointError) as error:
        CheckpointLoader.load_checkpoint(f'{base}/good.pth')
    message = str(error.value)
    assert f'{base}/good.pth' in message
    assert f'delete {str(hub / "good.pth")!r} to download it again' in message


def test_missing_url_and_unknown_zoo_name_are_named(server, hub):
    base, _, _ = server
    with pytest.raises(OSError, match='could not download checkpoint'):
        CheckpointLoader.load_checkpoint(f'{base}/absent.pth')
    with pytest.raises(KeyError, match='not a model of the torchvision'):
        CheckpointLoader.load_checkpoint('torchvision://no_such_net')
