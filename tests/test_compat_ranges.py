"""The version ranges of glag_mm.compat's workarounds and of the Runner
wrappers: applied inside each range, left alone outside it, on each side of
each bound; and the requirement that replaced a removed workaround."""

import importlib
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
from mmengine.runner.checkpoint import CheckpointLoader

from glag_mm import compat

REPO_ROOT = Path(__file__).resolve().parents[1]

_BLOCK_PKG_RESOURCES = """
import sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == 'pkg_resources' or name.startswith('pkg_resources.'):
            raise ModuleNotFoundError("No module named 'pkg_resources'")
sys.meta_path.insert(0, _Blocker())
sys.modules.pop('pkg_resources', None)
"""


def _read_mmpretrain_base(tmp_path, block_pkg_resources):
    """Read an ``mmpretrain::`` base with mmengine alone (no glag_mm)."""
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text("_base_ = ['mmpretrain::_base_/models/resnet18.py']\n")
    script = (_BLOCK_PKG_RESOURCES if block_pkg_resources else '') + (
        'from mmengine.config import Config\n'
        f'cfg = Config.fromfile({str(cfg_file)!r})\n'
        'b = cfg.model.backbone\n'
        "print('BACKBONE', b.type, b.depth)\n"
    )
    return subprocess.run(
        [sys.executable, '-W', 'ignore', '-c', script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
    )


def test_setuptools_pin_keeps_mmpretrain_base_configs_readable(tmp_path):
    """mmengine <= 0.10.7 needs pkg_resources for 'mmpretrain::' bases
    (gone in setuptools >= 82): the requirement setuptools<82 replaces the
    former patch of mmengine's package lookup."""
    from importlib.metadata import version

    from packaging.version import Version

    broken = _read_mmpretrain_base(tmp_path, block_pkg_resources=True)
    assert broken.returncode != 0
    assert "No module named 'pkg_resources'" in broken.stderr
    read = _read_mmpretrain_base(tmp_path, block_pkg_resources=False)
    assert read.returncode == 0, read.stderr[-2000:]
    assert 'BACKBONE ResNet 18' in read.stdout
    assert Version(version('setuptools')) < Version('82')
    assert 'setuptools<82' in (REPO_ROOT / 'setup.py').read_text()
    lines = (REPO_ROOT / 'requirements.txt').read_text().splitlines()
    assert 'setuptools<82' in lines


# the version on each side of each bound: (version, applied)
_MMENGINE_SIDES = [
    ('0.7.4', False),
    ('0.8.0', True),
    ('0.10.7', True),
    ('0.10.8', False),
    ('main', False),  # not PEP 440: not verified either
]
_MMPRETRAIN_SIDES = [
    ('1.0.0rc8', False),
    ('1.0.0', True),
    ('1.2.0', True),
    ('1.2.1', False),
]


def _owner(name):
    """The class a bounded workaround patches, and the attribute."""
    from mmengine.dataset import BaseDataset
    from mmengine.runner import Runner
    from mmpretrain.engine.hooks import VisualizationHook

    return {
        'patch_empty_dataset_message': (BaseDataset, '_serialize_data'),
        'patch_run_timestamp': (Runner, 'setup_env'),
        'patch_visualization_hook': (VisualizationHook, 'after_val_iter'),
    }[name]


_BOUNDED = [
    ('patch_empty_dataset_message', 'mmengine', _MMENGINE_SIDES),
    ('patch_run_timestamp', 'mmengine', _MMENGINE_SIDES),
    ('patch_visualization_hook', 'mmpretrain', _MMPRETRAIN_SIDES),
]


@pytest.mark.parametrize(
    'name,package,version,applied',
    [(n, p, v, a) for n, p, sides in _BOUNDED for v, a in sides],
)
def test_workaround_applied_only_in_its_version_range(
    monkeypatch, name, package, version, applied
):
    """On the unpatched class, with the reported version monkeypatched:
    patched inside the range, left alone outside it."""

    owner, attr = _owner(name)
    unpatched = getattr(owner, attr).__wrapped__
    monkeypatch.setattr(owner, attr, unpatched)
    monkeypatch.setattr(compat, 'APPLIED', {})
    monkeypatch.setattr(
        importlib.import_module(package), '__version__', version
    )
    assert getattr(compat, name)() is applied
    now = getattr(owner, attr)
    if applied:
        assert now.__wrapped__ is unpatched
        assert f'{package} {version} (in {package} >= ' in compat.APPLIED[name]
    else:
        assert now is unpatched
        assert compat.APPLIED == {}


def test_checkpoint_registration_on_every_version(monkeypatch):
    """Not bounded: mmengine's own local loader is replaced whatever
    version mmengine reports."""

    import mmengine
    import mmengine.runner.checkpoint as mmengine_checkpoint

    # the records this test writes go with it (tests after it read them)
    monkeypatch.setattr(compat, 'APPLIED', dict(compat.APPLIED))
    for version in ('0.7.4', '0.10.7', '0.10.8', '1.0.0'):
        schemes = OrderedDict(CheckpointLoader._schemes)
        schemes[''] = mmengine_checkpoint.load_from_local
        monkeypatch.setattr(CheckpointLoader, '_schemes', schemes)
        monkeypatch.setattr(mmengine, '__version__', version)
        assert compat.patch_checkpoint_loading()
        assert CheckpointLoader._schemes[''] is compat.load_from_local
        reason = compat.APPLIED['patch_checkpoint_loading']
        assert f'mmengine {version} loads' in reason
        assert "['local']" in reason


@pytest.mark.parametrize('version,applied', _MMENGINE_SIDES)
def test_runner_wrappers_only_in_their_version_range(
    monkeypatch, caplog, version, applied
):
    """The Runner, unwrapped, then install() with mmengine's version
    monkeypatched: a multi-stage config is refused naming glag_mm's tools
    inside the range; outside it, mmengine's own KeyError and a warning."""
    import mmengine
    from mmengine.runner import Runner

    from glag_mm.engine import runner_defaults

    monkeypatch.setattr(
        Runner, 'register_hooks', Runner.register_hooks.__wrapped__
    )
    wrapped = Runner.__dict__['from_cfg'].__func__.__wrapped__
    monkeypatch.setattr(Runner, 'from_cfg', wrapped)
    monkeypatch.setattr(mmengine, '__version__', version)
    assert runner_defaults.install() is applied
    cfg = dict(stages=[dict(name='stage_one')])
    if applied:
        with pytest.raises(ValueError, match="glag_mm's tools/train.py"):
            Runner.from_cfg(cfg)
        assert hasattr(Runner.register_hooks, '__wrapped__')
    else:
        with pytest.raises(KeyError):
            Runner.from_cfg(cfg)
        assert not hasattr(Runner.register_hooks, '__wrapped__')
        assert f'mmengine {version} is outside mmengine >= 0.8.0' in (
            caplog.text
        )


def test_each_range_is_in_its_docstring():
    """The ranges the code compares are the ones the docstrings state."""
    from glag_mm.engine import runner_defaults

    def flat(text):
        return ' '.join(text.split())

    for name, doc in (
        ('EMPTY_DATASET', compat.__doc__),
        ('RUN_TIMESTAMP_RANGE', compat.__doc__),
        ('VISUALIZATION_HOOK', compat.__doc__),
        ('RUNNER_WRAPPERS', runner_defaults.__doc__),
    ):
        versions = getattr(compat, name)
        assert f'{name}`, {versions})' in flat(doc), name
