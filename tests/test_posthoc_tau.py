"""Post-hoc tau chosen on validation, kept in checkpoints, applied to test."""

import json
import math
import uuid
from pathlib import Path

import pytest
import torch
import write_once_hook  # noqa: F401  (WriteOnceHook)
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from mmengine.runner.base_loop import BaseLoop
from mmpretrain.structures import DataSample
from test_export import glag_run  # noqa: F401  (fixture)
from test_metric import TinySet
from test_tools import run_tool, write_project

from glag_mm.engine import PosthocTauHook
from glag_mm.evaluation import (
    POSTHOC_TAU_KEY,
    LongTailAccuracy,
    get_selected_posthoc_tau,
    posthoc_labels_over_grid,
    select_posthoc_tau,
    set_selected_posthoc_tau,
)
from glag_mm.evaluation.posthoc_tau import DEFAULT_TAU_GRID
from glag_mm.safe_load import load_checkpoint_file
from glag_tools import prepare_test_config, prepare_train_config

REPO = Path(__file__).resolve().parents[1]

# two classes, head 0 and tail 1: log(pi_0 / pi_1) = log(800 / 100)
COUNTS = [800, 100]
D = math.log(8.0)
GRID = [round(0.1 * i, 1) for i in range(21)]


@pytest.fixture(autouse=True)
def hub():
    return MessageHub.get_instance(f'test_posthoc_tau_{uuid.uuid4().hex}')


def row(threshold):
    """Softmax scores whose post-hoc label turns from 0 to 1 past tau*.

    log p_0 - tau log pi_0 < log p_1 - tau log pi_1  <=>  tau > tau*, with
    log(p_0 / p_1) = tau* * log(pi_0 / pi_1).
    """
    return torch.softmax(torch.tensor([threshold * D, 0.0]), dim=0)


def split(tail_thresholds, head_thresholds):
    """Tail rows (true class 1) become right past their tau*; head rows
    (true class 0) become wrong past theirs."""
    scores = [row(t) for t in tail_thresholds + head_thresholds]
    gt = [1] * len(tail_thresholds) + [0] * len(head_thresholds)
    return torch.stack(scores), gt


# validation: every row right for 0.65 < tau <= 0.75 -> tau 0.7 is best;
# test: every row right for 1.65 < tau <= 1.75 -> tau 1.7 would be best.
VAL = split([0.25, 0.45, 0.65], [0.75, 1.05, 1.35])
TEST = split([1.25, 1.45, 1.65], [1.75, 1.9, 1.95])


def samples(scores, gt):
    return [
        DataSample()
        .set_gt_label(int(y))
        .set_pred_score(s)
        .set_pred_label(int(s.argmax()))
        for s, y in zip(scores, gt)
    ]


def evaluate(metric, data):
    evaluator = Evaluator(metric)
    evaluator.process(samples(*data))
    return evaluator.evaluate(len(data[1]))


def class_mean_accuracy(tau, data):
    """Per-class accuracy averaged over classes, by a plain loop."""
    scores, gt = data
    log_pi = [math.log(c / sum(COUNTS)) for c in COUNTS]
    hits = {0: [], 1: []}
    for s, y in zip(scores.tolist(), gt):
        adjusted = [math.log(s[j]) - tau * log_pi[j] for j in range(2)]
        hits[y].append(adjusted.index(max(adjusted)) == y)
    return 100 * sum(sum(h) / len(h) for h in hits.values()) / 2


def test_selection_maximises_validation_accuracy():
    direct = [class_mean_accuracy(t, VAL) for t in GRID]
    assert max(direct) == 100.0 and direct.index(100.0) == GRID.index(0.7)
    assert direct.count(100.0) == 1
    metric = LongTailAccuracy(
        class_counts=COUNTS, posthoc_tau='val', select_posthoc_tau=True
    )
    metrics = evaluate(metric, VAL)
    assert metrics['lt/posthoc_tau_selected'] == 0.7
    assert metrics['lt/top1_posthoc'] == pytest.approx(100.0)
    assert metrics['lt/top1'] == pytest.approx(50.0)  # plain argmax: head
    # the functional form, on the same matrix
    log_pi = torch.tensor(COUNTS, dtype=torch.float64)
    log_pi = (log_pi / log_pi.sum()).log()
    labels = posthoc_labels_over_grid(VAL[0], log_pi, GRID)
    index, values = select_posthoc_tau(
        labels, torch.tensor(VAL[1]), GRID, 2, 'class_mean'
    )
    assert GRID[index] == 0.7
    assert values.tolist() == pytest.approx(direct)


def test_test_split_applies_the_validation_tau_without_choosing():
    set_selected_posthoc_tau(dict(tau=0.7, iter=5))
    # on test, another tau would be best: 1.7 gets every row right
    assert class_mean_accuracy(1.7, TEST) == 100.0
    assert class_mean_accuracy(0.7, TEST) == 50.0
    metric = LongTailAccuracy(
        class_counts=COUNTS, posthoc_tau='val', select_posthoc_tau=False
    )
    evaluator = Evaluator(metric)
    evaluator.process(samples(*TEST))
    # only the labels at the applied tau are kept: no tau is compared
    assert [r['pred_posthoc'] for r in metric.results] == [[0]] * 6
    metrics = evaluator.evaluate(6)
    assert metrics['lt/posthoc_tau_selected'] == 0.7
    assert metrics['lt/top1_posthoc'] == pytest.approx(50.0)
    fixed = evaluate(
        LongTailAccuracy(class_counts=COUNTS, posthoc_tau=0.7), TEST
    )
    for key in ('top1_posthoc', 'many_posthoc', 'medium_posthoc'):
        assert metrics[f'lt/{key}'] == pytest.approx(fixed[f'lt/{key}'])
    # the test labels do not move the applied tau
    flipped = (TEST[0], [1 - y for y in TEST[1]])
    again = evaluate(
        LongTailAccuracy(
            class_counts=COUNTS, posthoc_tau='val', select_posthoc_tau=False
        ),
        flipped,
    )
    assert again['lt/posthoc_tau_selected'] == 0.7


def test_criterion_ties_and_messages():
    # an imbalanced validation split: 5 head rows always right at tau 0,
    # one tail row right past 0.3; the head rows turn wrong past 0.5
    data = split([0.3], [0.5] * 5)
    top1 = evaluate(
        LongTailAccuracy(
            class_counts=COUNTS,
            posthoc_tau='val',
            select_posthoc_tau=True,
            posthoc_tau_criterion='top1',
            posthoc_tau_grid=[0.0, 0.4, 1.0],
        ),
        data,
    )
    assert top1['lt/posthoc_tau_selected'] == 0.4  # 6/6 right at 0.4
    # ties go to the smallest tau: 0.4 and 0.45 both get every row right
    tied = evaluate(
        LongTailAccuracy(
            class_counts=COUNTS,
            posthoc_tau='val',
            select_posthoc_tau=True,
            posthoc_tau_grid=[0.45, 0.4, 2.0],
        ),
        data,
    )
    assert tied['lt/posthoc_tau_selected'] == 0.4
    with pytest.raises(ValueError, match='PosthocTauHook'):
        evaluate(LongTailAccuracy(class_counts=COUNTS, posthoc_tau='val'), VAL)
    with pytest.raises(ValueError, match='no tau has been chosen'):
        evaluate(
            LongTailAccuracy(
                class_counts=COUNTS,
                posthoc_tau='val',
                select_posthoc_tau=False,
            ),
            VAL,
        )
    with pytest.raises(ValueError, match='posthoc_tau_grid'):
        LongTailAccuracy(posthoc_tau='val', posthoc_tau_grid=[])
    with pytest.raises(ValueError, match='posthoc_tau_criterion'):
        LongTailAccuracy(posthoc_tau='val', posthoc_tau_criterion='best')
    with pytest.raises(TypeError, match="'val'"):
        LongTailAccuracy(posthoc_tau='test')


def test_tools_add_the_hook_where_an_evaluator_asks(tmp_path):
    metric = dict(type='LongTailAccuracy', posthoc_tau='val')
    cfg = Config(
        dict(
            work_dir=str(tmp_path),
            val_evaluator=metric,
            test_evaluator=metric,
            custom_hooks=[],
        )
    )
    prepare_test_config(cfg, 'x.pth')
    names = [h['type'] for h in cfg.custom_hooks]
    assert names.count('PosthocTauHook') == 1
    prepare_test_config(cfg, 'x.pth')  # not twice
    assert [h['type'] for h in cfg.custom_hooks].count('PosthocTauHook') == 1
    plain = Config(
        dict(
            work_dir=str(tmp_path),
            val_evaluator=[dict(type='LongTailAccuracy', posthoc_tau=1.0)],
            train_cfg=dict(by_epoch=True, max_epochs=1),
        )
    )
    prepare_train_config(plain)
    assert 'PosthocTauHook' not in [h['type'] for h in plain.custom_hooks]
    assert plain.train_cfg == dict(by_epoch=True, max_epochs=1)
    # tau_norm (any: it needs the head's norms) and temperature='val' too
    for options in (dict(tau_norm=0.5), dict(temperature='val')):
        plain.val_evaluator = [dict(type='LongTailAccuracy', **options)]
        plain.custom_hooks = []
        prepare_train_config(plain)
        assert [h['type'] for h in plain.custom_hooks].count(
            'PosthocTauHook'
        ) == 1, options
        # and the loop that saves what validation chose with the epoch
        assert plain.train_cfg == dict(
            type='ValidateBeforeSaveLoop', max_epochs=1
        )


# ------------------------------------------------------------- Runner --

NUM_CLASSES = 6
RUN_COUNTS = [300, 150, 60, 40, 30, 25]  # no few-shot class


def tiny_set(seed):
    """Four random 8x8 images per class (test_metric's in-memory set)."""
    return TinySet(NUM_CLASSES, per_class=4, seed=seed)


def _runner(
    work_dir,
    posthoc_tau='val',
    hooks=('PosthocTauHook',),
    head='LinearClsHead',
    metric=(),
    **kw,
):
    def loader(seed):
        return dict(
            dataset=tiny_set(seed),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=8,
            num_workers=0,
        )

    evaluator = dict(
        type='LongTailAccuracy',
        class_counts=RUN_COUNTS,
        posthoc_tau=posthoc_tau,
        **dict(metric),
    )
    return Runner(
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='CifarResNet', depth=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type=head, num_classes=NUM_CLASSES, in_channels=64),
        ),
        work_dir=str(work_dir),
        val_dataloader=loader(1),
        val_evaluator=evaluator,
        val_cfg=dict(),
        test_dataloader=loader(2),
        test_evaluator=evaluator,
        test_cfg=dict(),
        custom_hooks=[dict(type=h) for h in hooks],
        default_scope='mmpretrain',
        experiment_name=f'test_posthoc_tau_{uuid.uuid4().hex}',
        **kw,
    )


def _strict(text):
    def refuse(name):
        raise ValueError(f'not strict JSON: {name}')

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_checkpoint_carries_the_validation_tau_to_test(tmp_path):
    train = _runner(
        tmp_path / 'train',
        train_dataloader=dict(
            dataset=tiny_set(0),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=8,
            num_workers=0,
        ),
        hooks=('PosthocTauHook', 'WriteOnceHook'),  # each file written once
        train_cfg=dict(type='ValidateBeforeSaveLoop', max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
    )
    train.train()
    records = [
        _strict(line)
        for line in (
            tmp_path / 'train' / train.timestamp / 'vis_data' / 'scalars.json'
        )
        .read_text()
        .splitlines()
    ]
    val = [r for r in records if 'lt/posthoc_tau_selected' in r]
    assert [r['step'] for r in val] == [1, 2]
    # no few-shot class: the group is left out, the file is strict JSON
    assert all('lt/few' not in r and 'lt/ece_few' not in r for r in records)
    assert all('lt/many' in r and 'lt/ece' in r for r in val)
    taus = [r['lt/posthoc_tau_selected'] for r in val]

    # the loop validated epoch k before saving it: its checkpoint holds the
    # tau chosen on its own validation, each file written once
    for epoch, tau in zip((1, 2), taus):
        ckpt = torch.load(
            tmp_path / 'train' / f'epoch_{epoch}.pth', weights_only=False
        )
        meta = ckpt['meta']
        assert meta[POSTHOC_TAU_KEY]['tau'] == tau
        assert meta[POSTHOC_TAU_KEY]['iter'] == meta['iter'] == 3 * epoch
        saved_info = ckpt['message_hub']['runtime_info']
        assert POSTHOC_TAU_KEY not in saved_info  # resumed=False

    # the last checkpoint without its tau (trained without the hook)
    no_tau = load_checkpoint_file(str(tmp_path / 'train' / 'epoch_2.pth'))
    del no_tau['meta'][POSTHOC_TAU_KEY]
    torch.save(no_tau, tmp_path / 'train' / 'no_tau.pth')
    # test-only run: load the last checkpoint, apply its validation tau
    test = _runner(
        tmp_path / 'test', load_from=str(tmp_path / 'train' / 'epoch_2.pth')
    )
    set_selected_posthoc_tau(dict(tau=99.0, iter=-7))  # stale: replaced
    metrics = test.test()
    assert metrics['lt/posthoc_tau_selected'] == taus[1]
    assert get_selected_posthoc_tau()['tau'] == taus[1]
    # a validation pass of a test process (tools/test.py when the
    # checkpoint holds no tau) chooses tau for the loaded weights without
    # building the train loop (which would build its dataloader, and make
    # training-only hooks such as AFGHook act)
    for with_train_cfg in (False, True):
        set_selected_posthoc_tau(None)
        extra = {}
        if with_train_cfg:
            extra = dict(
                train_dataloader=dict(
                    dataset=tiny_set(0),
                    sampler=dict(type='DefaultSampler', shuffle=True),
                    batch_size=8,
                    num_workers=0,
                ),
                train_cfg=dict(by_epoch=True, max_epochs=2),
                optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
            )
        val_only = _runner(
            tmp_path / f'val_only_{with_train_cfg}',
            load_from=str(tmp_path / 'train' / 'no_tau.pth'),
            **extra,
        )
        val_only.val()
        assert not isinstance(val_only._train_loop, BaseLoop)
        assert get_selected_posthoc_tau() == dict(tau=taus[1], iter=6, epoch=2)
    # the same numbers as a fixed tau on the same checkpoint
    fixed = _runner(
        tmp_path / 'fixed',
        posthoc_tau=taus[1],
        hooks=(),
        load_from=str(tmp_path / 'train' / 'epoch_2.pth'),
    )
    want = fixed.test()
    for key in ('top1_posthoc', 'many_posthoc', 'medium_posthoc', 'ece'):
        assert metrics[f'lt/{key}'] == pytest.approx(want[f'lt/{key}'])

    # a training run that starts from those weights forgets the loaded tau
    hook = PosthocTauHook()
    set_selected_posthoc_tau(dict(tau=0.3, iter=6))

    class At:
        iter = 0

    hook.before_train(At())
    assert get_selected_posthoc_tau() is None

    # resuming from epoch 1 restores the tau chosen for epoch 1's weights
    # (the message hub saved in the checkpoint does not override it)
    seen = {}

    class Probe(Hook):
        priority = 'LOW'  # after PosthocTauHook.before_train

        def before_train(self, runner):
            seen['record'] = get_selected_posthoc_tau()
            seen['iter'] = runner.iter

    resumed = _runner(
        tmp_path / 'resumed',
        train_dataloader=dict(
            dataset=tiny_set(0),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=8,
            num_workers=0,
        ),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9)),
        load_from=str(tmp_path / 'train' / 'epoch_1.pth'),
        resume=True,
    )
    resumed.register_hook(Probe())
    set_selected_posthoc_tau(None)
    resumed.train()
    assert seen['iter'] == 3
    assert seen['record']['tau'] == taus[0] and seen['record']['iter'] == 3


def test_hook_refuses_choosing_on_test_labels():
    chooser = LongTailAccuracy(posthoc_tau='val', select_posthoc_tau=True)

    class Loop:
        evaluator = Evaluator(chooser)

    class FakeRunner:
        val_loop = None
        test_loop = Loop()

    with pytest.raises(ValueError, match='test labels'):
        PosthocTauHook().before_test_epoch(FakeRunner())
    applier = LongTailAccuracy(posthoc_tau='val')
    Loop.evaluator = Evaluator(applier)
    PosthocTauHook().before_test_epoch(FakeRunner())
    assert applier.selects_tau() is False
    FakeRunner.val_loop, FakeRunner.test_loop = Loop(), None
    PosthocTauHook().before_val_epoch(FakeRunner())
    assert applier.selects_tau() is True


@pytest.mark.slow
def test_tools_train_then_test_apply_the_validation_tau(tmp_path):
    """tools/train.py and tools/test.py add the hook; the test run applies
    the tau of the final validation; the reliability table plots."""
    files = write_project(tmp_path, epochs=2)
    with open(files['stage1'], 'a') as f:
        f.write(
            "val_evaluator = dict(type='LongTailAccuracy', posthoc_tau='val')"
            '\ntest_evaluator = val_evaluator\n'
            "default_hooks = dict(checkpoint=dict(type='CheckpointHook', "
            "interval=1, save_best='lt/top1'))\n"
        )
    work = tmp_path / 'work'
    done = run_tool('tools/train.py', files['stage1'], '--work-dir', work)
    assert done.returncode == 0, done.stderr[-3000:]
    (scalars,) = work.glob('*/vis_data/scalars.json')
    records = [_strict(line) for line in scalars.read_text().splitlines()]
    val = [r for r in records if 'lt/posthoc_tau_selected' in r]
    assert len(val) == 2
    # 6 training images per class: every class is few-shot; the empty
    # many / medium groups are left out of the log, not written as NaN
    assert all('lt/many' not in r and 'lt/medium' not in r for r in records)
    assert all('lt/few' in r and 'lt/ece_few' in r for r in val)

    out = tmp_path / 'metrics.json'
    tested = run_tool(
        'tools/test.py',
        files['stage1'],
        work / 'epoch_2.pth',
        '--work-dir',
        tmp_path / 'test',
        '--out',
        out,
        '--out-item',
        'metrics',
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    metrics = _strict(out.read_text())
    assert (
        metrics['lt/posthoc_tau_selected']
        == val[-1]['lt/posthoc_tau_selected']
    )
    assert sum(metrics['lt/reliability']['count']) == 30  # 3 per class

    # the same weights without the stored tau (a model trained without the
    # post-hoc evaluator): tools/test.py validates first and applies the tau
    # that validation chooses, the one training's last validation logged
    checkpoint = load_checkpoint_file(str(work / 'epoch_2.pth'))
    del checkpoint['meta'][POSTHOC_TAU_KEY]
    torch.save(checkpoint, tmp_path / 'no_tau.pth')
    again = tmp_path / 'again.json'
    tested = run_tool(
        'tools/test.py',
        files['stage1'],
        tmp_path / 'no_tau.pth',
        '--work-dir',
        tmp_path / 'test2',
        '--out',
        again,
        '--out-item',
        'metrics',
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert 'choosing it on the validation split' in tested.stdout + (
        tested.stderr
    )
    assert _strict(again.read_text()) == metrics
    # tau-norm and temperature on the same trained head, no training: the
    # head as a TauNormHead (same weights), both chosen on validation first
    options = [
        f'{split}_evaluator.{name}=val'
        for split in ('val', 'test')
        for name in ('tau_norm', 'temperature')
    ]
    zero = tmp_path / 'zero.json'
    tested = run_tool(
        'tools/test.py', files['stage1'], tmp_path / 'no_tau.pth',
        '--work-dir', tmp_path / 'test3', '--out', zero, '--out-item',
        'metrics', '--cfg-options', 'model.head.type=TauNormHead', *options,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert 'holds no posthoc_tau, tau_norm, temperature' in (
        tested.stdout + tested.stderr
    )
    zero = _strict(zero.read_text())
    assert zero['lt/top1'] == metrics['lt/top1']  # the head unchanged
    assert (
        zero['lt/posthoc_tau_selected'] == metrics['lt/posthoc_tau_selected']
    )
    assert zero['lt/temperature_selected'] > 0
    assert 'lt/top1_tau_norm' in zero and 'lt/ece_temperature' in zero
    # the chosen values given as numbers give the same test numbers
    fixed = tmp_path / 'fixed.json'
    tested = run_tool(
        'tools/test.py', files['stage1'], tmp_path / 'no_tau.pth',
        '--work-dir', tmp_path / 'test4', '--out', fixed, '--out-item',
        'metrics', '--cfg-options', 'model.head.type=TauNormHead',
        f'test_evaluator.tau_norm={zero["lt/tau_norm_selected"]}',
        f'test_evaluator.temperature={zero["lt/temperature_selected"]}',
    )  # fmt: skip
    assert tested.returncode == 0, tested.stderr[-3000:]
    fixed = _strict(fixed.read_text())
    for key in ('top1_tau_norm', 'class_mean_tau_norm', 'ece_temperature'):
        assert fixed[f'lt/{key}'] == pytest.approx(zero[f'lt/{key}'])
    png = tmp_path / 'reliability.png'
    plotted = run_tool('tools/plot_reliability.py', out, '--out', png)
    assert plotted.returncode == 0, plotted.stderr[-3000:]
    assert png.read_bytes()[:4] == b'\x89PNG'


@pytest.mark.slow
def test_afg_checkpoint_tested_with_a_validation_tau(
    glag_run,  # noqa: F811
    tmp_path,
):
    """tools/test.py validates an AFG stage two first (its checkpoint holds
    no tau): AFGHook updates nothing there, although mmpretrain's
    VisualizationHook builds the train loop during that validation."""
    root, checkpoint = glag_run
    config = root / 'stage2_posthoc.py'
    config.write_text(
        "_base_ = ['./stage2.py']\n"
        "val_evaluator = dict(posthoc_tau='val')\n"
        'test_evaluator = dict(_delete_=True, '
        "type='LongTailAccuracy', posthoc_tau='val')\n"
        'default_hooks = dict(visualization=dict('
        "type='VisualizationHook', enable=False))\n"
    )
    out = tmp_path / 'metrics.json'
    tested = run_tool(
        'tools/test.py',
        config,
        checkpoint,
        '--work-dir',
        tmp_path / 'test',
        '--out',
        out,
        '--out-item',
        'metrics',
        '--cfg-options',
        f'stage_one_checkpoint={checkpoint}',
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    log = tested.stdout + tested.stderr
    assert 'choosing it on the validation split' in log
    assert 'AFGHook: confidence update' not in log
    metrics = _strict(out.read_text())
    assert metrics['lt/posthoc_tau_selected'] in DEFAULT_TAU_GRID


@pytest.mark.slow
def test_readme_command_on_a_demo_stage_one_config(tmp_path):
    """The documented ``--cfg-options val_evaluator.posthoc_tau=val
    test_evaluator.posthoc_tau=val`` on a demo stage-one checkpoint: the
    config declares a held-out validation split (never validated while
    training), so tools/test.py chooses tau there, then tests."""
    from test_tools import write_fashion_mnist

    # IF 100 of 150 per class: 150 ... 1 kept, the rest held out (<= 100)
    write_fashion_mnist(tmp_path / 'data' / 'fashion-mnist', [150] * 10)
    config = REPO / 'configs' / 'demo' / 'graloss_r8_fmnistlt.py'
    work = tmp_path / 'work'
    trained = run_tool(
        REPO / 'tools' / 'train.py', config, '--work-dir', work,
        '--cfg-options', 'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1',
        cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    log = next(work.glob('*/*.log')).read_text()
    assert 'Epoch(train) [1]' in log and 'Epoch(val)' not in log
    out = tmp_path / 'metrics.json'
    tested = run_tool(
        REPO / 'tools' / 'test.py', config, work / 'epoch_1.pth',
        '--work-dir', tmp_path / 'test', '--out', out,
        '--out-item', 'metrics', '--cfg-options',
        'val_evaluator.posthoc_tau=val', 'test_evaluator.posthoc_tau=val',
        cwd=tmp_path,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stderr[-3000:]
    text = tested.stdout + tested.stderr
    assert 'choosing it on the validation split' in text
    log = next((tmp_path / 'test').glob('*/*.log')).read_text()
    assert 'LongTailDataset (heldout): kept ' in log  # not the test set
    metrics = json.loads(out.read_text())
    assert metrics['lt/posthoc_tau_selected'] in GRID
    assert sum(metrics['lt/reliability']['count']) == 30  # 3 per class
    assert 0 <= metrics['lt/top1_posthoc'] <= 100
