"""Settings refused at build with owner, name, range and value; the
teacher's shape checked before the statistics pass; an empty split named
with its loader."""

from types import SimpleNamespace

import pytest
import torch
from mmengine.runner import BaseLoop, Runner
from test_feature_disk_cache import _cfg

import glag_mm  # noqa: F401
from glag_mm.datasets.samplers import ClassAwareSampler
from glag_mm.engine.afg_hook import AFGHook
from glag_mm.engine.distill_hook import GLAGDistillHook
from glag_mm.models.heads.afg_head import AFGHead


def _head(**kwargs):
    return AFGHead(num_classes=3, in_channels=4, **kwargs)


@pytest.mark.parametrize('lam', [-0.5, float('inf')])
def test_tukey_lambda(lam):
    with pytest.raises(ValueError) as error:
        _head(tukey_lambda=lam)
    assert str(error.value).startswith(
        'AFGHead: tukey_lambda must be a finite number >= 0 (0: log'
    )
    assert str(error.value).endswith(f'got {lam!r}')
    assert _head(tukey_lambda=0).tukey_lambda == 0.0


@pytest.mark.parametrize(
    'value', [(0.2, 1.5), (-0.1, 1.0), (0.8, 0.2), (0.5,), 'ab', (0, True)]
)
def test_confidence_range(value):
    with pytest.raises(ValueError) as error:
        _head(confidence_range=value)
    assert str(error.value) == (
        'AFGHead: confidence_range must be a pair (low, high) with 0 <= low '
        f'<= high <= 1, got {value!r}'
    )
    assert _head(confidence_range=[0.1, 0.9]).confidence_range == (0.1, 0.9)


@pytest.mark.parametrize('seed', ['abc', 1.5, -1])
def test_seed(seed):
    with pytest.raises(
        ValueError,
        match=f'AFGHead: seed must be an integer >= 0, got {seed!r}',
    ):
        _head(seed=seed)
    dataset = SimpleNamespace(get_gt_labels=lambda: [0, 1])
    with pytest.raises(
        ValueError,
        match=f'ClassAwareSampler: seed must be an integer >= 0, got {seed!r}',
    ):
        ClassAwareSampler(dataset, seed=seed)


@pytest.mark.parametrize('workers', [-1, 1.5, '2'])
def test_afg_hook_num_workers(workers):
    with pytest.raises(ValueError) as error:
        AFGHook(num_workers=workers)
    assert str(error.value) == (
        f'AFGHook: num_workers must be an integer >= 0, got {workers!r}'
    )
    assert AFGHook(num_workers=0).pass_options['num_workers'] == 0


class _Loop(BaseLoop):
    def run(self):
        pass


def test_teacher_shape_checked_before_any_pass(tmp_path):
    """before_train (before the loop's feature pass and the statistics)
    refuses a stage-one head of another class count."""
    path = tmp_path / 'stage1.pth'
    state = {
        'head.fc.weight': torch.zeros(5, 4),
        'head.fc.bias': torch.zeros(5),
    }
    torch.save(dict(state_dict=state), path)
    runner = SimpleNamespace(model=SimpleNamespace(head=_head()))
    with pytest.raises(ValueError) as error:
        GLAGDistillHook(str(path)).before_train(runner)
    assert 'head.fc.weight has shape (5, 4)' in str(error.value)
    assert '(num_classes, in_channels) = (3, 4)' in str(error.value)


def test_empty_validation_split_names_its_loader(tmp_path):
    cfg = _cfg(tmp_path / 'work', None)
    cfg.val_dataloader.dataset.counts = [0, 0, 0]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as error:
        runner.train()
    assert str(error.value).startswith(
        "val_dataloader.dataset: DiskCacheBlobs(data_prefix={'img_path': ''}) "
        'holds no sample: point it at a non-empty'
    )
