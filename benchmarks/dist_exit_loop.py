"""Repeat a 2-rank CPU (gloo) torchrun training and count failed exits.

A finished gloo rank can abort at interpreter exit ('terminate called
without an active exception', SIGABRT), which torchrun reports as a failed
run although the work is done. ``tools/train.py`` and ``tools/test.py``
leave a distributed run without interpreter finalisation
(:func:`glag_tools.launch.run_and_exit`); this script checks it by
running ``tools/dist_train.sh`` (and with ``--test`` also
``tools/dist_test.sh``) N times on a tiny config: a one-stage ResNet with 8
channels on 60 Fashion-MNIST-shaped images, one epoch, validated and
checkpointed, each run in a fresh work_dir.

With ``--baseline K`` it first runs, K times each, a bare torch DDP script
(gloo, 2 ranks, no mmengine) that ends normally and the same script ending
with ``os._exit(0)``, to show the abort rate this machine has without the
fix.

Run (not part of the test suite; a run takes several seconds)::

    OMP_NUM_THREADS=1 python benchmarks/dist_exit_loop.py --runs 50
"""

import argparse
import os
import os.path as osp
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / 'tests'), str(REPO / 'tools')]

from test_tools import STAGE1, write_fashion_mnist  # noqa: E402

EPOCHS = 1  # validated after it: logs, visualiser and checkpoint all used
ABORT_SIGNS = ('terminate called', 'SIGABRT', 'Signal 6', 'exitcode  : -6')

BARE_DDP = """
import os, sys, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
dist.init_process_group('gloo')
model = DDP(torch.nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(20):
    x = torch.randn(16, 8)
    loss = model(x).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
dist.barrier()
if sys.argv[1] == 'os_exit':
    sys.stdout.flush(); os._exit(0)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def classify(result) -> str:
    text = result.stdout + result.stderr
    if any(sign in text for sign in ABORT_SIGNS):
        return 'abort'
    return 'ok' if result.returncode == 0 else 'failed'


def run(cmd, env, timeout=600):
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout,
        cwd=REPO,
    )  # fmt: skip


def tool_env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env.update(PORT=str(free_port()), **extra)
    return env


def loop_tools(root: Path, runs: int, test: bool, keep_logs: Path):
    data = write_fashion_mnist(root / 'fashion', [6] * 10)
    config = root / 'tiny.py'
    config.write_text(STAGE1.format(data_root=data, epochs=EPOCHS))
    counts = {}
    for i in range(runs):
        work = root / f'run{i}'
        start = time.perf_counter()
        result = run(
            ['bash', 'tools/dist_train.sh', str(config), '2',
             '--work-dir', str(work)],
            tool_env(),
        )  # fmt: skip
        kinds = [classify(result)]
        last = work / f'epoch_{EPOCHS}.pth'
        if kinds[0] == 'ok' and not last.is_file():
            kinds[0] = 'failed'  # exit 0 without the work: also a failure
        if test and kinds[0] == 'ok':
            tested = run(
                ['bash', 'tools/dist_test.sh', str(config),
                 str(last), '2', '--work-dir',
                 str(work / 'test')],
                tool_env(),
            )  # fmt: skip
            kinds.append(classify(tested))
            result = tested if kinds[-1] != 'ok' else result
        kind = (
            'ok'
            if all(k == 'ok' for k in kinds)
            else next(k for k in kinds if k != 'ok')
        )
        counts[kind] = counts.get(kind, 0) + 1
        if kind != 'ok':
            log = keep_logs / f'run{i}_{kind}.log'
            log.write_text(result.stdout + '\n' + result.stderr)
        print(
            f'run {i + 1:3d}/{runs}: {kind:6s} '
            f'({time.perf_counter() - start:.1f} s)',
            flush=True,
        )
    return counts


def loop_bare(root: Path, runs: int):
    script = root / 'bare_ddp.py'
    script.write_text(BARE_DDP)
    table = {}
    for mode in ('finalise', 'os_exit'):
        counts = {}
        for _ in range(runs):
            result = run(
                [sys.executable, '-m', 'torch.distributed.run',
                 '--nproc_per_node=2', f'--master_port={free_port()}',
                 str(script), mode],
                tool_env(),
            )  # fmt: skip
            kind = classify(result)
            counts[kind] = counts.get(kind, 0) + 1
        table[mode] = counts
        print(f'bare DDP, exit by {mode}: {counts}', flush=True)
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=50)
    parser.add_argument(
        '--test', action='store_true', help='also run tools/dist_test.sh'
    )
    parser.add_argument(
        '--baseline',
        type=int,
        default=0,
        help='first run a bare DDP script K times per exit mode',
    )
    parser.add_argument(
        '--logs', default='work_dirs/dist_exit_loop', help='failed runs log'
    )
    args = parser.parse_args(argv)
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.baseline:
            loop_bare(root, args.baseline)
        start = time.perf_counter()
        counts = loop_tools(root, args.runs, args.test, logs)
    total = sum(counts.values())
    what = 'dist_train.sh' + (' + dist_test.sh' if args.test else '')
    print(
        f'\n{what}, 2 gloo ranks, {total} runs in '
        f'{time.perf_counter() - start:.0f} s: '
        f'{counts.get("abort", 0)} aborts, '
        f'{counts.get("failed", 0)} other failures, '
        f'{counts.get("ok", 0)} clean'
    )
    if counts.get('ok', 0) != total:
        print(f'logs of the failed runs: {osp.abspath(logs)}')
        sys.exit(1)


if __name__ == '__main__':
    main()
