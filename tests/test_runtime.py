"""Progress, schedules and the class-counts hook shared by every module."""

from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

from glag_mm.core import (
    check_class_counts,
    check_integer,
    check_number,
    check_schedule,
    schedule_value,
)
from glag_mm.engine import ClassCountsHook, count_dataset_labels
from glag_mm.runtime import (
    get_train_class_counts,
    resolve_class_counts,
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
    """A Runner built from a config whose training dataset is ``dataset``."""
    if cfg is None and dataset is not None:
        cfg = dict(train_dataloader=dict(dataset=dataset))
    logger = SimpleNamespace(info=lambda *a: None, warning=lambda *a: None)
    return SimpleNamespace(cfg=cfg or {}, logger=logger, model=nn.Sequential())


def test_hook_publishes_training_counts(hub):
    ClassCountsHook().before_run(_runner(_Labels([1, 0, 1, 1])))
    assert get_train_class_counts() == [1, 3]
    ClassCountsHook(class_counts=[5, 4, 2]).before_run(_runner())
    assert get_train_class_counts() == [5, 4, 2]
    set_train_class_counts([9, 1])
    assert get_train_class_counts() == [9, 1]
    # a Runner built without a config: its train loop's dataset, before
    # training
    runner = _runner()
    runner.train_loop = SimpleNamespace(
        dataloader=SimpleNamespace(dataset=_Labels([0, 0, 1]))
    )
    runner.val_loop = None
    hook = ClassCountsHook()
    hook.before_run(runner)
    assert get_train_class_counts() == [9, 1]  # not counted yet
    hook.before_train(runner)
    assert get_train_class_counts() == [2, 1]


def test_hook_refuses_an_empty_class(hub):
    with pytest.raises(ValueError, match='zero training images'):
        ClassCountsHook().before_run(_runner(_Labels([0, 0], ('a', 'b'))))


def test_hook_sizes_count_buffers_before_other_hooks(hub):
    """Modules with init_class_counts get the counts in before_run."""
    from glag_mm.models.losses import GradualBalancedLoss

    loss = GradualBalancedLoss(3)
    runner = _runner(_Labels([0, 1, 1, 2, 2, 2]))
    runner.model = nn.Sequential(nn.Linear(2, 3), loss)
    ClassCountsHook().before_run(runner)
    assert loss.log_prior.tolist() == pytest.approx(
        torch.log(torch.tensor([1 / 6, 2 / 6, 3 / 6])).tolist()
    )


class _Annotated(_Labels):
    """A dataset named by its annotation file, as mmengine's are."""

    ann_file = 'meta/train.txt'


def _model_with_head(num_classes):
    model = nn.Sequential()
    model.head = SimpleNamespace(num_classes=num_classes)
    return model


@pytest.mark.parametrize(
    'labels, index, value',
    [([0, 1, -1, 2, -1], 2, -1), ([0, 1, 2, 3, 3], 3, 3)],
)
def test_hook_reports_out_of_range_labels_before_training(
    hub, labels, index, value
):
    """A label outside [0, num_classes) names the dataset and the sample,
    under any loss (the hook runs before the first iteration)."""
    runner = _runner(_Annotated(labels))
    runner.model = _model_with_head(3)
    with pytest.raises(ValueError) as error:
        ClassCountsHook().before_run(runner)
    message = str(error.value)
    assert f"_Annotated('meta/train.txt'): sample {index} has label " in (
        message
    )
    assert f'{value}, outside [0, 3) (2 such sample(s))' in message
    assert "head's num_classes" in message
    assert get_train_class_counts() is None  # nothing was published


def test_resolve_class_counts_says_where_the_counts_came_from(hub):
    with pytest.raises(ValueError, match='no training class counts'):
        resolve_class_counts(None, 3, owner='X')
    with pytest.raises(
        ValueError,
        match=r'X: 2 class counts given \(class_counts=\[\.\.\.\]\)',
    ):
        resolve_class_counts([4, 1], 3, owner='X')
    set_train_class_counts([4, 1])
    with pytest.raises(
        ValueError,
        match=r'X: 2 class counts counted from the training dataset '
        r'\(ClassCountsHook\) but the head has num_classes=3',
    ):
        resolve_class_counts(None, 3, owner='X')
    assert resolve_class_counts(None, 2, owner='X') == [4, 1]
    # explicit counts win over the dataset, whose labels are still checked
    dataset = _Labels([0, 1, 1])
    assert resolve_class_counts([5, 6], 2, dataset=dataset, owner='X') == [
        5,
        6,
    ]
    assert resolve_class_counts(None, 2, dataset=dataset, owner='X') == [1, 2]
    with pytest.raises(ValueError, match='sample 1 has label 1, outside'):
        resolve_class_counts([5], 1, dataset=dataset, owner='X')


@pytest.mark.parametrize(
    'kwargs, value, message',
    [
        ({}, float('nan'), 'x must be a finite number, got nan'),
        ({}, True, 'x must be a finite number, got True'),
        ({}, '1', "x must be a finite number, got '1'"),
        (dict(above=0), 0, 'x must be a finite number > 0, got 0'),
        (
            dict(above=0, at_most=1, owner='L'),
            1.5,
            'L: x must be a finite number > 0 and <= 1, got 1.5',
        ),
        (dict(at_least=1), 0.5, 'x must be a finite number >= 1, got 0.5'),
    ],
)
def test_check_number_refuses_with_name_range_and_value(
    kwargs, value, message
):
    with pytest.raises(ValueError) as error:
        check_number('x', value, **kwargs)
    assert str(error.value) == message


def test_check_number_returns_a_float():
    assert check_number('x', 2, above=0, at_most=2) == 2.0
    assert isinstance(check_number('x', 2), float)


def test_check_integer():
    assert check_integer('k', 3, at_least=1) == 3
    for value in (0, 2.0, True, '3'):
        with pytest.raises(ValueError) as error:
            check_integer('k', value, at_least=1, owner='O')
        assert str(error.value) == (
            f'O: k must be an integer >= 1, got {value!r}'
        )
