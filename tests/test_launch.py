"""glag_tools.launch: CPU DDP set-up without patches, and how tools end.

The successful 2-rank run is in tests/test_compat.py and tests/test_dist.py
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
