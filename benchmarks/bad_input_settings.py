"""The work_dir and settings cases of ``benchmarks/bad_inputs.py`` (see
:mod:`bad_input_cases`)."""

import os.path as osp

import torch
from bad_input_cases import case


# --------------------------------------------------------------- work_dir lock
@case(
    'second run on a work_dir a live run holds',
    ('in use by another run', 'pid'),
)
def second_run(folder):
    import json
    import socket
    import subprocess

    from glag_mm.work_dir_lock import LOCK_NAME, acquire

    with subprocess.Popen(['sleep', '30']) as live:
        try:
            holder = dict(
                host=socket.gethostname(), pid=live.pid, started=None
            )
            with open(osp.join(folder, LOCK_NAME), 'w') as f:
                json.dump(holder, f)
            acquire(folder)
        finally:
            live.kill()


# ------------------------------------------------------------------- settings
def _head(**kwargs):
    from glag_mm.models.heads.afg_head import AFGHead

    return AFGHead(num_classes=3, in_channels=4, **kwargs)


for _name, _value, _want in (
    (
        'tukey_lambda',
        -0.5,
        'AFGHead: tukey_lambda must be a finite number >= 0',
    ),
    (
        'confidence_range',
        (0.2, 1.5),
        'AFGHead: confidence_range must be a pair',
    ),
    (
        'confidence_range',
        (0.8, 0.2),
        'AFGHead: confidence_range must be a pair',
    ),
    ('seed', 'abc', 'AFGHead: seed must be an integer >= 0'),
):

    @case(f'AFGHead {_name}={_value!r}', (_want, f'got {_value!r}'))
    def head_setting(folder, name=_name, value=_value):
        _head(**{name: value})


for _workers in (-1, 1.5):

    @case(
        f'AFGHook num_workers={_workers!r}',
        (f'AFGHook: num_workers must be an integer >= 0, got {_workers!r}',),
    )
    def hook_workers(folder, workers=_workers):
        from glag_mm.engine.afg_hook import AFGHook

        AFGHook(num_workers=workers)


@case(
    'teacher of another class count',
    ('head.fc.weight has shape (5, 4)', '(3, 4)'),
)
def teacher_shape(folder):
    from types import SimpleNamespace

    from mmengine.runner import BaseLoop

    from glag_mm.engine.distill_hook import GLAGDistillHook

    class Loop(BaseLoop):
        def run(self):
            pass

    path = osp.join(folder, 'stage1.pth')
    torch.save(dict(state_dict={'head.fc.weight': torch.zeros(5, 4)}), path)
    runner = SimpleNamespace(
        _train_loop=Loop.__new__(Loop), model=SimpleNamespace(head=_head())
    )
    GLAGDistillHook(path).before_run(runner)


@case(
    'empty annotation file',
    ('CustomDataset(ann_file=', "val.txt'", 'holds no sample'),
)
def empty_dataset(folder):
    from mmpretrain.registry import DATASETS

    open(osp.join(folder, 'val.txt'), 'w').close()
    DATASETS.build(
        dict(
            type='CustomDataset',
            data_root=folder,
            ann_file='val.txt',
            pipeline=[],
            metainfo=dict(classes=['a', 'b']),
        )
    )
