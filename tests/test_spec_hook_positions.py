"""The hook positions the experiment specs use to turn chosen settings
(``custom_hooks.<Type>.<key>``) into ``--cfg-options`` index keys point at
hooks of that type in the GLAG configs they run."""

import re
from pathlib import Path

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
SPECS = {
    'experiments/fashionmnistlt_if100.py': (
        'configs/experiments/fashionmnistlt_if100/afg_kd_r8.py'
    ),
    'experiments/cifar10lt_if100_selected.py': (
        'configs/experiments/cifar10lt_if100/afg_kd_r32_10e.py'
    ),
    'experiments/cifar10lt_if100_lite0.py': (
        'configs/experiments/cifar10lt_if100_lite0/afg_kd_lite0_10e.py'
    ),
}


@pytest.mark.parametrize('spec', list(SPECS))
def test_hook_positions_match_the_config(spec):
    text = (REPO / spec).read_text()
    found = re.search(r"\{'AFGHook': (\d+), 'GLAGDistillHook': (\d+)\}", text)
    assert found, spec
    hooks = Config.fromfile(str(REPO / SPECS[spec])).custom_hooks
    afg, kd = (int(i) for i in found.groups())
    assert hooks[afg]['type'] == 'AFGHook'
    assert hooks[kd]['type'] == 'GLAGDistillHook'
