"""GLAGDistillHook and its linear teacher (docs/method.md stage two item 8)."""

import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmpretrain.registry import HOOKS, MODELS
from mmpretrain.structures import DataSample

from glag_mm.datasets import FeatureTensorDataset
from glag_mm.engine import GLAGDistillHook, LinearTeacher
from glag_mm.models.heads.distilled_linear_head import TeacherMixin
from glag_mm.runtime import set_train_class_counts

COUNTS = [40, 20, 8, 3]  # tail (< 10): classes 2 and 3


def _model(head='LinearClsHead', frozen=True, num_classes=4, **head_kw):
    backbone = dict(type='CifarResNet', depth=8, stage_channels=(4, 8, 16))
    if frozen:
        backbone.update(frozen_stages=3, norm_eval=True)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type=head, num_classes=num_classes, in_channels=16, **head_kw
            ),
        )
    )


def _runner(model):
    return SimpleNamespace(model=model, logger=logging.getLogger('test'))


def _checkpoint(tmp_path, model, name='stage1.pth'):
    path = tmp_path / name
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def _kd(teacher, raw, student, labels, samples=None):
    """The KD term a head that distils ``teacher`` adds to its loss."""
    head = TeacherMixin()
    head.set_teacher(teacher)
    if samples is None:
        samples = [DataSample().set_gt_label(int(c)) for c in labels]
    return head.add_teacher_terms({}, [raw], student, samples)['loss_kd']


def _progress(u, max_iters=101):
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', max_iters)
    hub.update_info('iter', round(u * (max_iters - 1)))


def test_kd_is_zero_when_student_equals_teacher():
    w, b = torch.randn(4, 16), torch.randn(4)
    teacher = LinearTeacher(w, b, torch.ones(4, dtype=torch.bool))
    _progress(1.0)
    raw = torch.rand(8, 16)
    out = _kd(teacher, raw, F.linear(raw, w, b), torch.arange(8) % 4)
    assert out.abs().item() < 1e-6


def test_kd_value_matches_direct_formula_on_head_classes():
    torch.manual_seed(0)
    w, b = torch.randn(4, 16), torch.randn(4)
    head = torch.tensor([True, True, False, False])
    teacher = LinearTeacher(
        w, b, head, schedule='convex', beta_max=2.0, temperature=3.0
    )
    raw, student = torch.rand(10, 16), torch.randn(10, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 3])
    _progress(0.5)  # beta = 2 * 0.5 ** 2 = 0.5
    got = _kd(teacher, raw, student, labels)
    t = 3.0
    p_t = F.softmax(F.linear(raw, w, b) / t, 1)
    log_s = F.log_softmax(student / t, 1)
    kl = (p_t * (p_t.log() - log_s)).sum(1) * t * t
    keep = head[labels]
    torch.testing.assert_close(got, 0.5 * kl[keep].mean())
    # only tail samples: nothing to distil
    tail_only = _kd(teacher, raw[2:4], student[2:4], labels[2:4])
    assert tail_only.item() == 0


def test_hook_distils_from_stage_one_head(tmp_path):
    set_train_class_counts(COUNTS)
    stage_one = _model(frozen=False)
    ckpt = _checkpoint(tmp_path, stage_one)
    model = _model(head='DistilledLinearClsHead')
    model.backbone.load_state_dict(stage_one.backbone.state_dict())
    hook = HOOKS.build(
        dict(type='GLAGDistillHook', checkpoint=ckpt, tail_threshold=10)
    )
    hook.before_train(_runner(model))
    torch.testing.assert_close(hook.teacher.weight, stage_one.head.fc.weight)
    assert hook.teacher.head_classes.tolist() == [True, True, False, False]
    # the head takes the teacher (set_teacher); student == teacher here
    model.head.load_state_dict(stage_one.head.state_dict())
    _progress(1.0)
    imgs = torch.rand(4, 3, 8, 8)
    samples = [DataSample().set_gt_label(c) for c in range(4)]
    losses = model.loss(imgs, samples)
    assert set(losses) == {'loss', 'loss_kd'}
    assert losses['loss_kd'].abs().item() < 1e-6


def test_hook_hands_afg_head_a_distiller(tmp_path):
    set_train_class_counts(COUNTS)
    stage_one = _model(frozen=False)
    model = _model(head='AFGHead', tail_threshold=10)
    model.backbone.load_state_dict(stage_one.backbone.state_dict())
    hook = GLAGDistillHook(checkpoint=_checkpoint(tmp_path, stage_one))
    hook.before_train(_runner(model))
    assert model.head.distiller is hook.teacher
    # the head's own tail threshold (10) decides the distilled classes
    assert hook.teacher.head_classes.tolist() == [True, True, False, False]
    assert 'loss' in vars(type(model.head))  # its own loss, not wrapped
    assert 'loss' not in vars(model.head)


def test_cached_logits_give_the_computed_loss(tmp_path):
    set_train_class_counts(COUNTS)
    stage_one = _model(frozen=False)
    model = _model(head='AFGHead', tail_threshold=10)
    model.backbone.load_state_dict(stage_one.backbone.state_dict())
    feats = torch.rand(30, 16)
    cached = FeatureTensorDataset(feats, torch.arange(30) % 4, None)
    runner = _runner(model)
    runner.train_loop = SimpleNamespace(
        dataloader=SimpleNamespace(dataset=cached)
    )
    ckpt = _checkpoint(tmp_path, stage_one)
    hook = GLAGDistillHook(checkpoint=ckpt, cache_logits_mib=479 / 2**20)
    hook.before_train(runner)
    hook.before_train_epoch(runner)  # 480 bytes > the limit: no table
    assert hook.teacher.table is None
    hook = GLAGDistillHook(checkpoint=ckpt)
    hook.before_train(runner)
    assert hook.teacher.table is None  # the loop caches after this
    hook.before_train_epoch(runner)
    w, b = stage_one.head.fc.weight, stage_one.head.fc.bias
    torch.testing.assert_close(hook.teacher.table, F.linear(feats, w, b))
    # a batch read by sample index gives the loss of the computed teacher
    _progress(0.7)
    pick = [3, 17, 8, 25, 0, 12]
    samples = [cached[i]['data_samples'] for i in pick]
    labels = torch.cat([s.gt_label for s in samples])
    student = torch.randn(6, 4)
    got = _kd(hook.teacher, feats[pick], student, labels, samples)
    plain = LinearTeacher(w, b, hook.teacher.head_classes)
    want = _kd(plain, feats[pick], student, labels)
    assert got.item() > 0
    torch.testing.assert_close(got, want)
    # the table is what is read: a changed row changes the loss
    hook.teacher.table[17, 0] += 1.0  # label 1, a head class
    moved = _kd(hook.teacher, feats[pick], student, labels, samples)
    assert not torch.allclose(moved, want)


def test_clear_errors(tmp_path):
    set_train_class_counts(COUNTS)
    stage_one = _model(frozen=False)
    ckpt = _checkpoint(tmp_path, stage_one)

    def run(model, checkpoint=ckpt, **kw):
        if model is not None:
            model.backbone.load_state_dict(stage_one.backbone.state_dict())
        GLAGDistillHook(checkpoint=checkpoint, **kw).before_train(
            _runner(model)
        )

    with pytest.raises(FileNotFoundError, match='does not exist'):
        run(_model(), checkpoint=str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='stage_one_checkpoint'):
        run(_model(), checkpoint='{stage_one_checkpoint}')
    # a head without the teacher API: named, with the one to use
    with pytest.raises(TypeError, match="type='DistilledLinearClsHead'"):
        run(_model())
    with pytest.raises(ValueError, match=r'shape \(4, 16\).*\(5, 16\)'):
        run(_model(num_classes=5))
    with pytest.raises(ValueError, match='must be frozen'):
        run(_model(frozen=False))
    other = _model()
    with pytest.raises(ValueError, match='differs from the teacher'):
        GLAGDistillHook(checkpoint=ckpt).before_train(_runner(other))
    with pytest.raises(ValueError, match='no'):
        run(_model(), checkpoint=_checkpoint(tmp_path, torch.nn.Linear(1, 1)))
    with pytest.raises(ValueError, match='temperature'):
        GLAGDistillHook(checkpoint=ckpt, temperature=0)
    with pytest.raises(ValueError, match='schedule'):
        GLAGDistillHook(checkpoint=ckpt, schedule='cubic')
    with pytest.raises(ValueError, match='cache_logits_mib must be'):
        GLAGDistillHook(checkpoint=ckpt, cache_logits_mib=-1)
    with pytest.raises((TypeError, ValueError), match='cache_logits_mib'):
        GLAGDistillHook(checkpoint=ckpt, cache_logits_mib='2G')


def test_hook_kd_over_head_logits_from_an_adjusted_teacher(tmp_path):
    set_train_class_counts(COUNTS)
    stage_one = _model(frozen=False)
    model = _model(head='DistilledLinearClsHead')
    model.backbone.load_state_dict(stage_one.backbone.state_dict())
    hook = GLAGDistillHook(
        checkpoint=_checkpoint(tmp_path, stage_one),
        tail_threshold=10,
        temperature=2.0,
        kd_logits='head',
        teacher_tau=1.5,
    )
    hook.before_train(_runner(model))
    _progress(1.0)  # beta = 1
    gen = torch.Generator().manual_seed(0)
    raw, student = torch.rand(6, 16, generator=gen), torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    got = _kd(hook.teacher, raw, student, labels)
    # direct: teacher z_t - 1.5 log pi, softmaxes over head classes 0, 1
    fc = stage_one.head.fc
    log_pi = torch.tensor(COUNTS, dtype=torch.float32)
    log_pi = (log_pi / log_pi.sum()).log()
    z_t = (F.linear(raw, fc.weight, fc.bias) - 1.5 * log_pi).detach()
    p_t = F.softmax(z_t[:, :2] / 2, 1)
    log_s = F.log_softmax(student[:, :2] / 2, 1)
    kl = (p_t * (p_t.log() - log_s)).sum(1) * 4
    rows = torch.tensor([True, True, False, False, True, True])  # head
    torch.testing.assert_close(got, kl[rows].mean())
    with pytest.raises(
        ValueError, match="kd_logits must be one of \\('all', 'head'\\)"
    ):
        GLAGDistillHook(checkpoint='x.pth', kd_logits='tail')
    with pytest.raises(ValueError, match='teacher_tau'):
        GLAGDistillHook(checkpoint='x.pth', teacher_tau=-1)
