"""Shared test set-up: few threads on small machines, quiet third parties."""

import os
import sys
import warnings
from pathlib import Path

import pytest
import torch

os.environ.setdefault('OMP_NUM_THREADS', '2')
torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))
warnings.filterwarnings('ignore', message='.*MultiScaleDeformableAttention.*')

import glag_mm  # noqa: E402,F401  (registers modules, applies compat)

REPO_ROOT = Path(__file__).resolve().parents[1]
# glag_tools, the tools' library, lives beside the scripts in tools/
sys.path.insert(0, str(REPO_ROOT / 'tools'))
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'


@pytest.fixture
def shared_data() -> Path:
    """The development data next to the repository, or a skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            '../shared/data is absent (development data only); '
            'this test needs the real split files / images'
        )
    return SHARED_DATA
