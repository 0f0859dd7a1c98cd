"""Train a model with glag_mm: mmpretrain's ``tools/train.py`` plus stages.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] ...

A config without ``stages`` trains exactly as with mmpretrain's tool. A
top-level config with ``stages = [dict(name=..., config=..., init_from=...)]``
trains each stage with its own Runner in ``work_dir/<name>``, handing a stage
with ``init_from`` the last checkpoint of that stage as
``stage_one_checkpoint``; ``--stage NAME`` runs one stage, ``--resume`` skips
finished stages and resumes the interrupted one. ``--cfg-options
stage2.KEY=VALUE`` sets KEY in the stage named stage2 only; ``--smoke``
rehearses every stage on a few images in ``<work_dir>_smoke``.
"""

import argparse
import os
import sys

from mmengine.config import Config, DictAction

import glag_mm  # noqa: F401  (applies the compat fixes before configs load)
from glag_tools import ConfigError, run_config
from glag_tools.launch import init_cpu_process_group, run_and_exit
from glag_tools.rehearsal import apply_train_options, set_threads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or (no value) from the latest '
        'checkpoint of the work_dir; with a two-stage config, finished '
        'stages are skipped and the interrupted one resumes',
    )
    parser.add_argument(
        '--stage',
        help='with a two-stage config: run only the stage of this name',
    )
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (needs a CUDA device)',
    )
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training',
    )
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual over the configured batch size',
    )
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders',
    )
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the dataloaders',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_dataloader.batch_size=64 or stage_one_checkpoint=PATH',
    )
    parser.add_argument(
        '--smoke',
        action='store_true',
        help='rehearsal in minutes: every stage trains one epoch on a few '
        'images per class of its real datasets at 32 pixels, validates and '
        'tests, in <work_dir>_smoke',
    )
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads'
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    # torch.distributed.launch passes --local-rank (torch >= 2.0)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    cfg = Config.fromfile(args.config)
    # on CPU, the gloo group mmengine cannot start (it selects a CUDA device)
    init_cpu_process_group(args.launcher, cfg)
    # per-stage options (stage2.model.head.alpha=0.1) and --smoke
    cfg_options, work_dir, finalize = apply_train_options(
        cfg, args.config, args.cfg_options, args.work_dir, args.smoke
    )
    flags = dict(
        launcher=args.launcher,
        amp=args.amp,
        auto_scale_lr=args.auto_scale_lr,
        no_validate=args.no_validate,
        pin_memory=not args.no_pin_memory,
        persistent_workers=not args.no_persistent_workers,
    )
    try:
        run_config(
            args.config,
            cfg,
            work_dir=work_dir,
            stage=args.stage,
            finalize=finalize,
            resume=args.resume,
            cfg_options=cfg_options,
            **flags,
        )
    except ConfigError as error:
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    run_and_exit(main)
