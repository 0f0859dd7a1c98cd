"""tools/feature_spread.py: per-class spread of training vs unseen features."""

import json

import pytest
import torch
from test_tools import run_tool, two_stage_run  # noqa: F401  (fixture)

from glag_tools.feature_spread import (
    group_means,
    pipeline_of,
    spread_table,
    with_pipeline,
)


def test_spread_table_against_a_direct_computation():
    gen = torch.Generator().manual_seed(0)
    ftr = torch.randn(40, 3, generator=gen)
    ytr = torch.tensor([0] * 30 + [1] * 10)
    fev = torch.randn(12, 3, generator=gen) * 2 + 0.5
    yev = torch.tensor([0] * 6 + [1] * 4 + [2] * 2)  # class 2: unseen only
    w = torch.randn(3, 3, generator=gen)

    def predict(f):
        return (f @ w.T).argmax(1)

    rows = spread_table((ftr, ytr), (fev, yev), predict, 3)
    for c in (0, 1):
        a, b = ftr[ytr == c].tolist(), fev[yev == c].tolist()
        mu = [sum(x[d] for x in a) / len(a) for d in range(3)]

        def msd(points, centre):
            return sum(
                sum((p[d] - centre[d]) ** 2 for d in range(3)) for p in points
            ) / len(points)

        mean_b = [sum(x[d] for x in b) / len(b) for d in range(3)]
        row = rows[c]
        assert (row['n_train'], row['n_eval']) == (len(a), len(b))
        assert row['spread_train'] == pytest.approx(msd(a, mu), rel=1e-5)
        assert row['spread_eval'] == pytest.approx(msd(b, mu), rel=1e-5)
        assert row['ratio'] == pytest.approx(msd(b, mu) / msd(a, mu), 1e-5)
        assert row['shift'] == pytest.approx(msd([mean_b], mu), rel=1e-5)
        hits = [int(p) == c for p in predict(fev[yev == c])]
        assert row['eval_acc'] == pytest.approx(100 * sum(hits) / len(hits))
    assert rows[2]['n_train'] == 0 and rows[2]['ratio'] is None
    assert rows[2]['train_acc'] is None and rows[2]['eval_acc'] is not None
    groups = group_means(rows, many=20, few=5)
    assert groups['many']['classes'] == 1  # 30 images
    assert groups['medium']['ratio'] == pytest.approx(rows[1]['ratio'])
    assert groups['few']['classes'] == 1 and groups['few']['ratio'] is None


def test_training_split_read_with_the_evaluation_pipeline():
    test_pipe = [dict(type='PackInputs')]
    train = dict(
        type='LongTailDataset',
        dataset=dict(type='CIFAR10', pipeline=[dict(type='RandomFlip')]),
    )
    val = dict(type='LongTailDataset', dataset=dict(pipeline=test_pipe))
    assert pipeline_of(val) == test_pipe
    swapped = with_pipeline(train, pipeline_of(val))
    assert swapped['dataset']['pipeline'] == test_pipe
    assert train['dataset']['pipeline'] == [dict(type='RandomFlip')]


@pytest.mark.slow
def test_tool_on_a_trained_trunk(two_stage_run, tmp_path):  # noqa: F811
    files, _, checkpoints = two_stage_run
    out = tmp_path / 'spread.json'
    result = run_tool(
        'tools/feature_spread.py',
        files['stage1'],
        checkpoints['stage1'],
        '--out',
        out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = data['rows']
    assert [r['cls'] for r in rows] == list(range(10))
    # write_project: 6 training and 3 test (= val) images per class
    assert [(r['n_train'], r['n_eval']) for r in rows] == [(6, 3)] * 10
    assert '| class | n train |' in result.stdout
    assert all(r['spread_train'] > 0 for r in rows)
    assert data['groups']['few']['classes'] == 10  # < 20 images each
    # the head's accuracy on the unseen split: that of tools/test.py
    tested = run_tool(
        'tools/test.py',
        files['stage1'],
        checkpoints['stage1'],
        '--work-dir',
        tmp_path / 'test',
        '--out',
        tmp_path / 'metrics.json',
        '--out-item',
        'metrics',
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    top1 = sum(r['eval_acc'] * r['n_eval'] for r in rows) / 30
    assert top1 == pytest.approx(metrics['accuracy/top1'])
