"""Progress, schedules and the class-counts hook shared by every module."""

from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

from glag_mm.core import check_class_counts, check_schedule, schedule_value
from glag_mm.engine import ClassCountsHook, count_dataset_labels
from glag_mm.runtime import (
    get_train_class_counts,
    set_train_class_counts,
    training_progress,
)


@pytest.fixture
def hub():
    hub = MessageHub.get_instance('glag_runtime_test')
    yield hub
    hub.runtime_info.clear()


def test_progress_spans_first_to_last_iteration(hub):
    assert training_progress(default=0.25) == 0.25  # no loop running
    hub.update_info('max_iters', 11)
    for it, expected in [(0, 0.0), (5, 0.5), (10, 1.0), (12, 1.0)]:
        hub.update_info('iter', it)
        assert training_progress() == pytest.approx(expected)


def test_progress_single_iteration(hub):
    hub.update_info('max_iters', 1)
    hub.update_info('iter', 0)
    assert training_progress() == 0.0


@pytest.mark.parametrize(
    'schedule,expected',
    [
        ('linear', [0.0, 1.0, 2.0]),
        ('convex', [0.0, 0.5, 2.0]),
        ('concave', [0.0, 2.0 * 0.5**0.5, 2.0]),
        ('constant', [2.0, 2.0, 2.0]),
    ],
)
def test_schedule_values(schedule, expected):
    got = [schedule_value(u, schedule, 2.0) for u in (0.0, 0.5, 1.0)]
    assert got == pytest.approx(expected)
    assert schedule_value(0.5, 'convex', 1.0, power=3) == pytest.approx(1 / 8)


def test_schedule_errors():
    with pytest.raises(ValueError, match='unknown schedule'):
        check_schedule('cosine', 1.0)
    with pytest.raises(ValueError, match='tau_max must be'):
        check_schedule('linear', -0.5)
    with pytest.raises(ValueError, match='power must be'):
        check_schedule('convex', 1.0, power=0)


def test_class_count_errors():
    with pytest.raises(ValueError, match='num_classes=4'):
        check_class_counts([3, 2, 1], num_classes=4)
    with pytest.raises(ValueError, match=r'class\(es\) \[1\]'):
        check_class_counts([3, 0, 1])
    with pytest.raises(ValueError, match='non-negative integers'):
        check_class_counts([3, 1.5])


class _Labels:
    def __init__(self, labels, classes=None, counts=None):
        self.labels = labels
        self.metainfo = {}
        if classes is not None:
            self.metainfo['classes'] = classes
        if counts is not None:
            self.metainfo['class_counts'] = counts

    def get_gt_labels(self):
        return self.labels


def test_count_dataset_labels():
    assert count_dataset_labels(_Labels([0, 2, 2, 1, 2])) == [1, 1, 3]
    # trailing classes absent from the labels still get a (zero) count
    assert count_dataset_labels(_Labels([0, 1], ('a', 'b', 'c'))) == [1, 1, 0]
    # metainfo wins over counting
    assert count_dataset_labels(_Labels([0], counts=[7, 3])) == [7, 3]
    with pytest.raises(TypeError, match='class_counts explicitly'):
        count_dataset_labels(object())


def _runner(dataset=None, cfg=None):
    loop = (
        None
        if dataset is None
        else SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))
    )
    logger = SimpleNamespace(info=lambda *a: None, warning=lambda *a: None)
    return SimpleNamespace(
        _train_loop=loop, cfg=cfg or {}, logger=logger, model=nn.Sequential()
    )


def test_hook_publishes_training_counts(hub):
    ClassCountsHook().before_run(_runner(_Labels([1, 0, 1, 1])))
    assert get_train_class_counts() == [1, 3]
    ClassCountsHook(class_counts=[5, 4, 2]).before_run(_runner())
    assert get_train_class_counts() == [5, 4, 2]
    set_train_class_counts([9, 1])
    assert get_train_class_counts() == [9, 1]


def test_hook_refuses_an_empty_class(hub):
    with pytest.raises(ValueError, match='zero training images'):
        ClassCountsHook().before_run(_runner(_Labels([0, 0], ('a', 'b'))))


def test_hook_sizes_count_buffers_before_other_hooks(hub):
    """Modules with init_class_counts get the counts in before_run."""
    from glag_mm.models.losses import GradualBalancedLoss

    loss = GradualBalancedLoss()
    runner = _runner(_Labels([0, 1, 1, 2, 2, 2]))
    runner.model = nn.Sequential(nn.Linear(2, 3), loss)
    ClassCountsHook().before_run(runner)
    assert loss.log_prior.tolist() == pytest.approx(
        torch.log(torch.tensor([1 / 6, 2 / 6, 3 / 6])).tolist()
    )
