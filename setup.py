"""Packaging for glag_mm, the long-tailed recognition plugin for mmpretrain."""

import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup


def _version():
    namespace = {}
    with open(osp.join('glag_mm', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def _mmcv_requirement():
    """Require mmcv-lite only where no full mmcv is installed already."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        version('mmcv')
        return []
    except PackageNotFoundError:
        return ['mmcv-lite>=2.0.0rc4,<2.3.0']
    except Exception:  # pragma: no cover - exotic importlib states
        return []


def add_mim_extension():
    """Put tools/ and configs/ in glag_mm/.mim, as mmpretrain does.

    ``mim train glag_mm CONFIG`` / ``mim test glag_mm ...`` look for the
    package's scripts and configs in ``<package>/.mim``. A wheel or sdist
    build copies them there; an editable install links them.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif any(c in sys.argv for c in ('sdist', 'bdist_wheel', 'build')):
        mode = 'copy'
    else:
        return
    root = osp.dirname(osp.abspath(__file__))
    mim_root = osp.join(root, 'glag_mm', '.mim')
    os.makedirs(mim_root, exist_ok=True)
    for name in ('tools', 'configs'):
        src, dst = osp.join(root, name), osp.join(mim_root, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_root), dst)
        else:
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc')
            )


add_mim_extension()

setup(
    name='glag_mm',
    version=_version(),
    description=(
        'Long-tailed recognition for mmpretrain: Gradual Balanced '
        'Loss, Adaptive Feature Generator, GALA and FBL.'
    ),
    long_description=open('README.md').read()
    if osp.exists('README.md')
    else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.11',
    classifiers=[
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Programming Language :: Python :: 3.13',
    ],
    packages=find_packages(include=['glag_mm', 'glag_mm.*']),
    include_package_data=True,  # glag_mm/.mim, see MANIFEST.in
    install_requires=[
        'torch>=1.13',
        'mmengine>=0.8.0,<1.0.0',
        'mmpretrain>=1.0.0,<1.3.0',
        'numpy',
        'scipy',
        'isal',  # fast CRC-32 for checkpoint integrity (zlib fallback)
        'packaging',  # the version ranges of glag_mm/compat.py
        # mmengine <= 0.10.7 resolves '<package>::' base configs with
        # pkg_resources, which setuptools >= 82 no longer ships
        'setuptools<82',
    ]
    + _mmcv_requirement(),
    extras_require={
        'tests': ['pytest', 'ruff', 'matplotlib'],
        # tools/export.py --format onnx (export and its check)
        'export': ['onnx>=1.14', 'onnxruntime>=1.16'],
        # mmengine's TensorboardVisBackend
        'tensorboard': ['tensorboard'],
        # `mim train glag_mm CONFIG`, `mim test glag_mm ...`
        'mim': ['openmim'],
    },
    zip_safe=False,
)
