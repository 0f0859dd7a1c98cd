"""``mim train glag_mm CONFIG`` and ``mim test glag_mm CONFIG --checkpoint``.

A wheel of this checkout is built (setup.py copies tools/ and configs/ into
glag_mm/.mim, mmpretrain's layout) and installed into a temporary folder put
first on PYTHONPATH; mim then finds the config by name inside the package and
runs the package's own tools.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_tools import write_fashion_mnist

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec('mim') is None,
    reason='openmim is not installed (pip install openmim)',
)


def _run(*args, cwd, env=None, timeout=600):
    result = subprocess.run(
        [*map(str, args)],
        cwd=cwd,
        env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


@pytest.fixture(scope='module')
def wheel_site(tmp_path_factory):
    """This checkout built as a wheel and installed into a folder."""
    root = tmp_path_factory.mktemp('mim')
    src = root / 'src'
    src.mkdir()
    for name in ('setup.py', 'README.md', 'MANIFEST.in'):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim')
    for name in ('glag_mm', 'tools', 'configs'):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    pip = [sys.executable, '-m', 'pip']
    _run(*pip, 'wheel', '-q', '--no-deps', '--no-build-isolation',
         '-w', root / 'dist', '.', cwd=src)  # fmt: skip
    (wheel,) = (root / 'dist').glob('glag_mm-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    assert 'glag_mm/.mim/tools/train.py' in names
    assert 'glag_mm/.mim/tools/test.py' in names
    # the tools' library ships with the scripts, not in the plugin
    assert 'glag_mm/.mim/tools/glag_tools/stages.py' in names
    assert not [n for n in names if n.startswith('glag_mm/apis')]
    assert 'glag_mm/.mim/configs/demo/graloss_r8_fmnistlt.py' in names
    assert 'glag_mm/.mim/configs/_base_/default_runtime.py' in names
    # PlacesLT's class names, a data file of the package
    assert 'glag_mm/datasets/places365_categories.txt' in names
    site = root / 'site'
    _run(*pip, 'install', '-q', '--no-deps', '--no-index', '--target',
         site, wheel, cwd=root)  # fmt: skip
    return site


def _mim(*args, site, cwd):
    return _run(
        sys.executable,
        '-c',
        'from mim.cli import cli; cli()',
        *args,
        cwd=cwd,
        env=dict(PYTHONPATH=str(site)),
    )


@pytest.mark.slow
def test_mim_train_and_test(wheel_site, tmp_path):
    # the demo config reads data/fashion-mnist relative to the working dir
    write_fashion_mnist(tmp_path / 'data' / 'fashion-mnist', [120] * 10)
    work_dir = tmp_path / 'work'
    result = _mim(
        'train',
        'glag_mm',
        'graloss_r8_fmnistlt.py',
        '--work-dir',
        work_dir,
        '--cfg-options',
        'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1',
        site=wheel_site,
        cwd=tmp_path,
    )
    mim_root = wheel_site / 'glag_mm' / '.mim'
    assert f'{mim_root}/tools/train.py' in result.stdout
    assert f'{mim_root}/configs/demo/graloss_r8_fmnistlt.py' in result.stdout
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'class counts: 10 classes' in log and ' tau: ' in log
    checkpoint = work_dir / 'epoch_1.pth'
    assert checkpoint.is_file()

    out = tmp_path / 'metrics.json'
    result = _mim(
        'test',
        'glag_mm',
        'graloss_r8_fmnistlt.py',
        '--checkpoint',
        checkpoint,
        '--work-dir',
        tmp_path / 'test',
        '--out',
        out,
        '--out-item',
        'metrics',
        site=wheel_site,
        cwd=tmp_path,
    )
    assert f'{mim_root}/tools/test.py' in result.stdout
    metrics = json.loads(out.read_text())
    assert 0 <= metrics['lt/top1'] <= 100
