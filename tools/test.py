"""Test (and evaluate) a checkpoint: mmpretrain's ``tools/test.py`` flags.

    python tools/test.py CONFIG CHECKPOINT [--out FILE] [--work-dir DIR] ...

With a two-stage config the last stage's config is used (``--stage NAME``
picks another) and logs go to ``work_dir/<stage>``. The tested checkpoint
holds every weight, so ``'{stage_one_checkpoint}'`` in a stage-two config
resolves to ``--cfg-options stage_one_checkpoint=PATH`` if given, else to the
stage-one checkpoint recorded in the work_dir, else to CHECKPOINT itself.
A test evaluator with ``posthoc_tau='val'`` (or ``tau_norm`` /
``temperature='val'``) applies the value stored in the checkpoint, or,
where it holds none, the one the validation split chooses in a validation
pass run first.
"""

import argparse
import os
import sys

import mmengine
from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults

import glag_mm  # noqa: F401  (applies the compat fixes before configs load)
from glag_mm.evaluation.posthoc_tau import get_selected, set_selected
from glag_tools import (
    ConfigError,
    build_runner,
    default_work_dir,
    is_multi_stage,
    load_stages,
    prepare_test_config,
    read_stage_done,
    select_stage,
    stage_work_dir,
    uses_validation_tau,
)
from glag_tools.config import validation_options
from glag_tools.launch import init_cpu_process_group, run_and_exit
from glag_tools.rehearsal import set_threads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a checkpoint'
    )
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save the file with the metrics'
    )
    parser.add_argument('--out', help='the file to write results to')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='what --out holds (default: predictions)',
    )
    parser.add_argument(
        '--stage',
        help='with a two-stage config: the stage whose config tests '
        '(default: the last)',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs',
    )
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed-precision test (needs a CUDA device)',
    )
    parser.add_argument(
        '--show-dir', help='directory where visualisations are saved'
    )
    parser.add_argument(
        '--show', action='store_true', help='show predictions in a window'
    )
    parser.add_argument(
        '--interval', type=int, default=1, help='visualise every n samples'
    )
    parser.add_argument(
        '--wait-time', type=float, default=2, help='window display time (s)'
    )
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloader',
    )
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation: the config tta_pipeline / tta_model '
        'if set, else flip averaging',
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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(args):
    """The config to test, its work_dir and a stage-one checkpoint if any."""
    cfg = Config.fromfile(args.config)
    if not is_multi_stage(cfg):
        if args.stage is not None:
            raise ConfigError(
                f'--stage {args.stage} needs a two-stage config; '
                f'{args.config} has no stages.'
            )
        return cfg, args.config, args.work_dir, None
    stages = load_stages(cfg, args.config)
    stage = select_stage(stages, args.stage) if args.stage else stages[-1]
    top_dir = args.work_dir or cfg.get('work_dir', None)
    top_dir = top_dir or default_work_dir(args.config)
    stage_one = None
    if stage.init_from is not None:
        source = select_stage(stages, stage.init_from)
        done = read_stage_done(stage_work_dir(top_dir, source))
        stage_one = done['checkpoint'] if done else None
    stage_cfg = Config.fromfile(stage.config)
    if stage.cfg_options:
        stage_cfg.merge_from_dict(stage.cfg_options)
    return stage_cfg, stage.config, stage_work_dir(top_dir, stage), stage_one


def choose_posthoc_tau_first(runner, cfg) -> None:
    """``test_evaluator`` with ``posthoc_tau='val'`` and a checkpoint that
    carries no tau (trained without it): run the validation split first, so
    its ``LongTailAccuracy(posthoc_tau='val')`` chooses the tau that the
    test split then applies. A checkpoint's own tau is used as it is. The
    same for ``tau_norm`` and ``temperature='val'``."""
    names = validation_options(cfg.get('test_evaluator'))
    if not names:
        return
    for name in names:
        set_selected(name, None)
    runner.load_or_resume()  # PosthocTauHook publishes what is stored
    missing = sorted(n for n in names if get_selected(n) is None)
    if missing and cfg.get('val_dataloader'):
        runner.logger.info(
            f'the checkpoint holds no {", ".join(missing)}: choosing it on '
            'the validation split before testing'
        )
        runner.val()


def main(argv=None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    if args.out is None and args.out_item is not None:
        sys.exit('error: --out-item needs --out FILE.')
    try:
        cfg, config_path, work_dir, stage_one = load_config(args)
        prepare_test_config(
            cfg,
            args.checkpoint,
            config_path=config_path,
            work_dir=work_dir,
            launcher=args.launcher,
            amp=args.amp,
            show=args.show,
            show_dir=args.show_dir,
            interval=args.interval,
            wait_time=args.wait_time,
            tta=args.tta,
            pin_memory=not args.no_pin_memory,
            cfg_options=args.cfg_options,
            stage_one_checkpoint=stage_one,
        )
    except ConfigError as error:
        sys.exit(f'error: {error}')
    if uses_validation_tau(cfg.get('test_evaluator')):
        # choose_posthoc_tau_first may validate: no 'best' checkpoint then
        checkpoint_hook = cfg.get('default_hooks', {}).get('checkpoint')
        if checkpoint_hook:
            checkpoint_hook['save_best'] = None
    # on CPU, the gloo group mmengine cannot start (it selects a CUDA device)
    init_cpu_process_group(args.launcher, cfg)
    runner = build_runner(cfg)
    if args.out and args.out_item in ('pred', None):
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out)
        )
    choose_posthoc_tau_first(runner, cfg)
    metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)


if __name__ == '__main__':
    run_and_exit(main)
