"""tools/slurm_test.sh and slurm_train.sh build mmpretrain's srun lines.

A fake ``srun`` first on PATH records its arguments and environment, so
the scripts run here without a cluster.
"""

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAKE_SRUN = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ['SRUN_RECORD'], 'w') as f:
    json.dump(dict(argv=sys.argv[1:],
                   pythonpath=os.environ.get('PYTHONPATH', '')), f)
"""


def _run(tmp_path, script, *args, **env):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    record = tmp_path / 'srun.json'
    full_env = dict(
        os.environ,
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        SRUN_RECORD=str(record),
        **env,
    )
    result = subprocess.run(
        ['bash', str(REPO / 'tools' / script), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(record.read_text())


def test_slurm_test_srun_line(tmp_path):
    got = _run(
        tmp_path,
        'slurm_test.sh',
        'gpu',
        'lt_test',
        'configs/glag_r32_cifar100lt_if100.py',
        'work dirs/stage2/epoch_40.pth',
        '--out',
        'metrics.json',
        '--out-item',
        'metrics',
        GPUS='16',
        GPUS_PER_NODE='8',
        CPUS_PER_TASK='4',
        SRUN_ARGS='--quotatype=auto',
    )
    tools = str(REPO / 'tools')
    assert got['argv'] == [
        '-p',
        'gpu',
        '--job-name=lt_test',
        '--gres=gpu:8',
        '--ntasks=16',
        '--ntasks-per-node=8',
        '--cpus-per-task=4',
        '--kill-on-bad-exit=1',
        '--quotatype=auto',
        'python',
        '-u',
        f'{tools}/test.py',
        'configs/glag_r32_cifar100lt_if100.py',
        'work dirs/stage2/epoch_40.pth',  # a path with a space stays whole
        '--launcher=slurm',
        '--out',
        'metrics.json',
        '--out-item',
        'metrics',
    ]
    assert got['pythonpath'].split(os.pathsep)[0] == f'{tools}/..'


def test_slurm_test_defaults_match_slurm_train(tmp_path):
    test = _run(tmp_path, 'slurm_test.sh', 'p', 'j', 'cfg.py', 'ckpt.pth')
    train = _run(tmp_path, 'slurm_train.sh', 'p', 'j', 'cfg.py', 'work')
    # same srun options and defaults (8 GPUs, 5 CPUs per task)
    assert test['argv'][:8] == train['argv'][:8]
    assert '--gres=gpu:8' in test['argv'] and '--ntasks=8' in test['argv']
    assert '--cpus-per-task=5' in test['argv']
    assert test['argv'][-4:] == [
        f'{REPO}/tools/test.py',
        'cfg.py',
        'ckpt.pth',
        '--launcher=slurm',
    ]
    assert train['argv'][-3:] == [
        'cfg.py',
        '--work-dir=work',
        '--launcher=slurm',
    ]
