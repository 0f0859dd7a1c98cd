"""``mim train glag_mm CONFIG`` and ``mim test glag_mm CONFIG --checkpoint``.

A wheel of this checkout is built (setup.py copies tools/ and configs/ into
glag_mm/.mim, mmpretrain's layout) and installed into a temporary folder put
first on PYTHONPATH; mim then finds the config by name inside the package and
runs the package's own tools.
"""

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
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


def _requirement_names(path: Path) -> set:
    """Distribution names of a requirements file (no nested -r)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split('#')[0].strip()
        if line and not line.startswith('-'):
            names.add(re.split(r'[<>=!~;\[ ]', line)[0].lower())
    return names


def test_mim_requirements_cover_its_imports():
    """requirements/mim.txt lists every distribution mim's modules import
    that the project's own requirements do not bring (mim's command line
    loads all its commands: ``mim search`` needs pandas), and the Makefile
    and requirements-dev.txt install that one list."""
    import mim

    listed = _requirement_names(REPO / 'requirements' / 'mim.txt')
    base = _requirement_names(REPO / 'requirements.txt')
    base |= {'torch', 'mmengine', 'mmcv-lite', 'setuptools', 'pip', 'mim'}
    dists = importlib.metadata.packages_distributions()
    imported = set()
    for source in Path(mim.__file__).parent.rglob('*.py'):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                imported.add(node.module.split('.')[0])
    needed = {
        dist.lower()
        for module in imported
        if module not in sys.stdlib_module_names
        for dist in dists.get(module, [module])
    }
    assert {'pandas', 'requests', 'click', 'model-index'} <= needed
    assert needed - base - {'mim', 'openmim'} <= listed, needed - listed
    assert 'urllib3' in listed  # requests' transport, for --no-deps users
    makefile = (REPO / 'Makefile').read_text()
    assert '-r requirements/mim.txt' in makefile
    dev = (REPO / 'requirements-dev.txt').read_text()
    assert '-r requirements/mim.txt' in dev
