"""torchrun --nproc_per_node=2 on CPU (gloo) through tools/dist_train.sh.

Trains the tiny config of test_tools.py for 2 epochs, validating each epoch,
then resumes it for a third; checks logs, metrics, checkpoints, that the two
ranks split the data, and that the resumed run starts at the saved epoch.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_tools import REPO, TOOLS, free_port, write_project

# 6 images per class x 10 classes, batch 16: 4 iterations per epoch on one
# process, ceil(30 / 16) = 2 on each of two ranks.
ITERS_PER_EPOCH_2_RANKS = 2


def _dist_train(config, work_dir, *extra):
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHON=sys.executable,
        PORT=str(free_port()),
    )
    result = subprocess.run(
        [
            'bash',
            str(TOOLS / 'dist_train.sh'),
            str(config),
            '2',
            '--work-dir',
            str(work_dir),
            *extra,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def _records(run_dir: Path):
    scalars = run_dir / 'vis_data' / 'scalars.json'
    return [json.loads(line) for line in scalars.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.distributed.is_available(), reason='torch without distributed'
)
def test_torchrun_two_ranks_train_validate_checkpoint_resume(tmp_path):
    files = write_project(tmp_path, epochs=2)
    work_dir = tmp_path / 'work'
    _dist_train(files['stage1'], work_dir)

    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        assert (work_dir / name).is_file(), name
    (first,) = [p for p in work_dir.iterdir() if p.is_dir()]
    log = (first / f'{first.name}.log').read_text()
    assert 'Distributed training: True' in log
    assert 'class counts: 10 classes, 60 images' in log  # ClassCountsHook
    records = _records(first)
    train = [r for r in records if 'loss' in r]
    val = [r for r in records if 'accuracy/top1' in r]
    assert [r['epoch'] for r in train] == [1, 1, 2, 2]  # data split by rank
    assert [r['iter'] for r in train] == [1, 2, 3, 4]
    assert [r['step'] for r in val] == [1, 2]  # validated every epoch
    ckpt = torch.load(
        work_dir / 'epoch_2.pth', map_location='cpu', weights_only=False
    )
    assert ckpt['meta']['epoch'] == 2
    assert ckpt['meta']['iter'] == 2 * ITERS_PER_EPOCH_2_RANKS

    _dist_train(
        files['stage1'],
        work_dir,
        '--resume',
        '--cfg-options',
        'train_cfg.max_epochs=3',
    )
    runs = sorted(p for p in work_dir.iterdir() if p.is_dir())
    assert len(runs) == 2
    resumed = runs[-1]
    log = (resumed / f'{resumed.name}.log').read_text()
    assert 'resumed epoch: 2, iter: 4' in log
    train = [r for r in _records(resumed) if 'loss' in r]
    assert [r['epoch'] for r in train] == [3, 3]
    assert [r['iter'] for r in train] == [5, 6]
    assert (work_dir / 'epoch_3.pth').is_file()
    assert (
        (work_dir / 'last_checkpoint')
        .read_text()
        .strip()
        .endswith('epoch_3.pth')
    )
