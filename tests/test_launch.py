"""glag_tools.launch: CPU DDP set-up without patches, and how tools end.

The successful 2-rank run is here and in tests/test_dist.py
(tools/dist_train.sh); ``benchmarks/dist_exit_loop.py`` repeats it.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from test_tools import free_port

from glag_tools import prepare_test_config, prepare_train_config
from glag_tools.launch import run_and_exit, set_cpu_model_wrapper

REPO = Path(__file__).resolve().parents[1]
cpu_only = pytest.mark.skipif(
    torch.cuda.is_available(), reason='the CPU-only path is tested here'
)


@cpu_only
def test_cpu_model_wrapper_only_for_distributed_ddp():
    cfg = Config(dict(launcher='none'))
    set_cpu_model_wrapper(cfg)
    assert 'model_wrapper_cfg' not in cfg
    cfg = Config(dict(launcher='pytorch', find_unused_parameters=True))
    set_cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=True,
    )
    other = dict(type='MMFullyShardedDataParallel')
    cfg = Config(dict(launcher='pytorch', model_wrapper_cfg=other))
    set_cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == other  # another wrapper: left alone


@cpu_only
def test_tools_prepare_cpu_ddp(tmp_path):
    path = tmp_path / 'cfg.py'
    path.write_text('model_wrapper_cfg = dict(broadcast_buffers=True)\n')
    cfg = prepare_train_config(
        Config.fromfile(str(path)), work_dir='w', launcher='pytorch'
    )
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.broadcast_buffers is True  # the config's
    cfg = prepare_test_config(
        Config.fromfile(str(path)), 'c.pth', work_dir='w', launcher='pytorch'
    )
    assert cfg.model_wrapper_cfg.device_ids is None


def test_outside_a_process_group_exits_as_usual():
    def fails(argv):
        raise ValueError(f'boom {argv}')

    with pytest.raises(ValueError, match='boom'):
        run_and_exit(fails)
    with pytest.raises(SystemExit, match='error: bad flag'):
        run_and_exit(lambda argv: sys.exit('error: bad flag'))
    seen = []
    run_and_exit(seen.append, ['x'])
    assert seen == [['x']]


_FAILING_RANK = """
import os, sys
import torch
from glag_tools.launch import init_cpu_process_group, run_and_exit

def main(argv):
    init_cpu_process_group('pytorch')
    if int(os.environ['RANK']) == 1:
        raise ValueError('rank 1 failed on purpose')
    print('RANK 0 FINISHED', flush=True)

run_and_exit(main)
print('NOT REACHED', flush=True)
"""


@pytest.mark.slow
@cpu_only
def test_failed_rank_exits_non_zero_with_its_traceback(tmp_path):
    script = tmp_path / 'failing.py'
    script.write_text(_FAILING_RANK)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), str(REPO / 'tools')])
    result = subprocess.run(
        [
            sys.executable, '-m', 'torch.distributed.run',
            '--nproc_per_node=2', f'--master_port={free_port()}',
            str(script),
        ],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode != 0
    assert 'Traceback' in result.stderr
    assert 'ValueError: rank 1 failed on purpose' in result.stderr
    assert 'NOT REACHED' not in result.stdout


def test_mmengine_dist_init_needs_cuda_the_tools_do_not(monkeypatch):
    """The breakage: mmengine selects a CUDA device before init; the tools
    start the gloo group themselves (no mmengine patch)."""
    if torch.cuda.is_available():
        pytest.skip('the CPU-only path is what is tested here')
    import mmengine.dist.utils as dist_utils

    from glag_tools.launch import init_cpu_process_group

    env = dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1')
    env.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises((RuntimeError, AssertionError)):
        dist_utils._init_dist_pytorch(backend='gloo')
    assert not torch.distributed.is_initialized()
    assert not init_cpu_process_group('none')
    try:
        assert init_cpu_process_group('pytorch')
        assert torch.distributed.get_backend() == 'gloo'
        assert torch.distributed.get_world_size() == 1
    finally:
        torch.distributed.destroy_process_group()


_DDP_SCRIPT = """
import sys
import torch
from torch import nn
import glag_mm  # noqa: F401
from glag_tools.launch import (
    init_cpu_process_group, run_and_exit, set_cpu_model_wrapper)
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, inputs, labels, mode='tensor'):
        logits = self.fc(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(
                logits, torch.as_tensor(labels)))
        return logits


class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, generator=g), labels=i % 2)


def main(argv):
    init_cpu_process_group('pytorch')
    cfg = Config(dict(launcher='pytorch'))
    set_cpu_model_wrapper(cfg)
    runner = Runner(
        model=Toy(),
        work_dir=sys.argv[1],
        train_dataloader=dict(
            dataset=Data(), sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        launcher='pytorch',
        cfg=dict(model_wrapper_cfg=cfg.model_wrapper_cfg),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
    )
    runner.train()
    with open(f'{sys.argv[1]}/rank{runner.rank}.txt', 'w') as f:
        f.write(f'WORLD {runner.world_size} '
                f'WRAPPER {type(runner.model).__name__} '
                f'DEVICES {runner.model.device_ids}')
    print('RANK DONE', runner.rank, flush=True)


run_and_exit(main)
print('NOT REACHED')
"""


@pytest.mark.slow
def test_torchrun_two_ranks_on_cpu(tmp_path):
    script = tmp_path / 'ddp_toy.py'
    script.write_text(_DDP_SCRIPT)
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=f'{REPO}{os.pathsep}{REPO / "tools"}',
    )
    result = subprocess.run(
        [
            sys.executable, '-m', 'torch.distributed.run',
            '--nproc_per_node=2', f'--master_port={free_port()}',
            str(script), str(tmp_path / 'work'),
        ],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        written = (tmp_path / 'work' / f'rank{rank}.txt').read_text()
        assert written == (
            'WORLD 2 WRAPPER MMDistributedDataParallel DEVICES None'
        )
    assert result.stdout.count('RANK DONE') == 2
    assert 'NOT REACHED' not in result.stdout  # left by os._exit
    assert (tmp_path / 'work' / 'epoch_2.pth').is_file()
