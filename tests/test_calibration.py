"""ECE, the reliability table and its diagram (tools/plot_reliability.py);
temperature scaling chosen on validation."""

import copy
import importlib.util
import json
import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

from glag_mm.evaluation import (
    LongTailAccuracy,
    ReliabilityTable,
    reliability_bins,
)
from glag_mm.evaluation.temperature import (
    DEFAULT_TEMPERATURE_GRID,
    nll_and_confidence_over_grid,
    select_temperature,
)

REPO = Path(__file__).resolve().parents[1]
COUNTS = [500, 200, 60, 30, 10, 5]  # many {0, 1}, medium {2, 3}, few {4, 5}


@pytest.fixture(autouse=True)
def hub():
    return MessageHub.get_instance(f'test_calibration_{uuid.uuid4().hex}')


def evaluate(metric, scores, gt, batch_size=7):
    samples = [
        DataSample()
        .set_gt_label(int(y))
        .set_pred_score(s)
        .set_pred_label(int(s.argmax()))
        for s, y in zip(scores, gt)
    ]
    evaluator = Evaluator(metric)
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start : start + batch_size])
    return evaluator.evaluate(len(samples))


def loop_table(conf, correct, bins=15):
    """Bins by plain comparisons: b/B < c <= (b+1)/B (c = 0 in bin 0)."""
    count, conf_sum, hits = [0] * bins, [0.0] * bins, [0] * bins
    for c, ok in zip(conf, correct):
        for b in range(bins):
            if b / bins < c <= (b + 1) / bins or (b == 0 and c == 0):
                count[b] += 1
                conf_sum[b] += c
                hits[b] += int(ok)
                break
    ece = sum(
        count[b] / len(conf) * abs(hits[b] / count[b] - conf_sum[b] / count[b])
        for b in range(bins)
        if count[b]
    )
    return count, conf_sum, hits, 100 * ece


def test_ece_on_a_hand_computed_case():
    # 0.95 lies in bin 14 (0.933, 1]: 1 of 2 right, gap |0.5 - 0.95|;
    # 0.55 lies in bin 8 (0.533, 0.6]: 2 of 2 right, gap |1 - 0.55|.
    conf = torch.tensor([0.95, 0.95, 0.55, 0.55])
    correct = torch.tensor([True, False, True, True])
    table = reliability_bins(conf, correct)
    assert table['ece'] == pytest.approx(45.0)
    assert table['count'][14] == 2 and table['count'][8] == 2
    assert sum(table['count']) == 4
    assert table['accuracy'][14] == pytest.approx(50.0)
    assert table['confidence'][8] == pytest.approx(55.0)
    assert table['accuracy'][0] is None and table['confidence'][0] is None
    # a perfectly calibrated bin has no error
    assert reliability_bins(
        torch.tensor([0.5, 0.5]), torch.tensor([True, False])
    )['ece'] == pytest.approx(0.0)


def test_bin_edges_belong_to_the_lower_bin():
    edges = torch.tensor(
        [0.0, 1 / 15, 2 / 15, 0.2, 0.5, 14 / 15, 1.0], dtype=torch.float64
    )
    # into bins 0, 0, 1, 2, 7, 13, 14
    count = reliability_bins(edges, torch.ones(7))['count']
    assert count == [2, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1]
    just_above = torch.tensor([0.2 + 1e-9], dtype=torch.float64)
    assert reliability_bins(just_above, torch.ones(1))['count'][3] == 1
    with pytest.raises(ValueError, match='softmax'):
        reliability_bins(torch.tensor([1.5]), torch.tensor([True]))


def test_metric_ece_matches_a_direct_loop_overall_and_per_group():
    gen = torch.Generator().manual_seed(3)
    n = 500
    gt = torch.randint(0, 6, (n,), generator=gen)
    logits = torch.randn(n, 6, generator=gen) * 2.5
    logits[torch.arange(n), gt] += 1.0  # right more often than chance
    scores = torch.softmax(logits, dim=1)
    metrics = evaluate(LongTailAccuracy(class_counts=COUNTS), scores, gt)

    pred = scores.argmax(dim=1)
    conf = scores.max(dim=1).values.tolist()
    correct = (pred == gt).tolist()
    count, conf_sum, hits, ece = loop_table(conf, correct)
    assert metrics['lt/ece'] == pytest.approx(ece)
    assert ece > 1.0  # a real miscalibration, not a trivial zero
    table = metrics['lt/reliability']
    assert table['count'] == count
    for b in range(15):
        if count[b]:
            assert table['accuracy'][b] == pytest.approx(
                100 * hits[b] / count[b]
            )
            assert table['confidence'][b] == pytest.approx(
                100 * conf_sum[b] / count[b]
            )
        else:
            assert table['accuracy'][b] is None
    group_of = {0: 'many', 1: 'many', 2: 'medium', 3: 'medium'}
    for name in ('many', 'medium', 'few'):
        keep = [group_of.get(int(y), 'few') == name for y in gt]
        sub_conf = [c for c, k in zip(conf, keep) if k]
        sub_correct = [c for c, k in zip(correct, keep) if k]
        want = loop_table(sub_conf, sub_correct)[3]
        assert metrics[f'lt/ece_{name}'] == pytest.approx(want), name
    # ECE sits beside top-1 in the results
    keys = list(metrics)
    assert keys.index('lt/ece') == keys.index('lt/few') + 1


def test_ece_options_and_table_type():
    scores = torch.softmax(torch.randn(20, 6), dim=1)
    gt = torch.randint(0, 6, (20,))
    off = evaluate(
        LongTailAccuracy(class_counts=COUNTS, ece_bins=0), scores, gt
    )
    assert not [k for k in off if 'ece' in k or 'reliability' in k]
    ten = evaluate(
        LongTailAccuracy(class_counts=COUNTS, ece_bins=10, reliability=False),
        scores,
        gt,
    )
    assert 'lt/reliability' not in ten and 'lt/ece' in ten
    with pytest.raises(ValueError, match='ece_bins'):
        LongTailAccuracy(ece_bins=-1)

    table = reliability_bins(torch.tensor([0.3, 0.9]), torch.tensor([1, 0]))
    assert isinstance(table, ReliabilityTable)
    # gaps |1 - 0.3| and |0 - 0.9|, one prediction each: (0.7 + 0.9) / 2
    assert str(table) == (
        '<reliability of 2 predictions in 15 bins, ECE 80.00>'
    )
    restored = pickle.loads(pickle.dumps(table))
    assert type(restored) is dict and restored['count'] == table['count']
    assert type(copy.deepcopy(table)) is ReliabilityTable
    # strict JSON: empty bins are null, not NaN
    text = json.dumps(table, allow_nan=False)
    assert json.loads(text)['accuracy'][0] is None


def _load_tool():
    path = REPO / 'tools' / 'plot_reliability.py'
    spec = importlib.util.spec_from_file_location('plot_reliability', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reliability_diagram_png_has_the_table_bins(tmp_path):
    tool = _load_tool()
    import matplotlib.image as mpimg

    conf = torch.tensor([0.95, 0.95, 0.55, 0.55, 0.19, 0.71])
    correct = torch.tensor([True, False, True, True, False, True])
    table = reliability_bins(conf, correct)
    other = reliability_bins(conf, torch.ones(6, dtype=torch.bool))
    out = tmp_path / 'plots' / 'reliability.png'
    drawn = tool.plot_reliability({'CE': table, 'GLAG': other}, str(out))

    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    image = mpimg.imread(out)
    assert image.shape[1] > image.shape[0] > 100  # two panels side by side
    width = 100 / 15
    # bins 2 (0.19), 8 (0.55), 10 (0.71), 14 (0.95) hold predictions
    assert drawn['CE']['centres'] == pytest.approx(
        [(b + 0.5) * width for b in (2, 8, 10, 14)]
    )
    assert drawn['CE']['accuracy'] == pytest.approx([0, 100, 100, 50])
    assert drawn['CE']['confidence'] == pytest.approx([19, 55, 71, 95])
    assert drawn['GLAG']['accuracy'] == pytest.approx([100] * 4)
    assert sum(drawn['CE']['shares']) == pytest.approx(100)
    assert drawn['CE']['width'] == pytest.approx(width)

    # the metrics file tools/test.py writes (--out-item metrics), via CLI
    metrics = tmp_path / 'metrics.json'
    metrics.write_text(json.dumps({'lt/top1': 50.0, 'lt/reliability': table}))
    assert tool.load_reliability(str(metrics))['count'] == table['count']
    cli_out = tmp_path / 'cli.png'
    tool.main([str(metrics), '--names', 'CE', '--out', str(cli_out)])
    assert cli_out.read_bytes()[:4] == b'\x89PNG'
    (tmp_path / 'bad.json').write_text(json.dumps({'lt/top1': 1.0}))
    with pytest.raises(ValueError, match='pred_score'):
        tool.load_reliability(str(tmp_path / 'bad.json'))
    assert np.isfinite(image).all()


def overconfident(seed, size=600, classes=4, sharpen=3.0):
    """Labels drawn from softmax(z), scores softmax(sharpen * z): right
    as often as a calibrated model, far more confident."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(size, classes, generator=gen) * 1.5
    gt = torch.multinomial(torch.softmax(logits, 1), 1, generator=gen)
    return torch.softmax(sharpen * logits, dim=1), gt.flatten()


def test_temperature_minimises_nll_over_a_directly_computed_grid():
    scores, gt = overconfident(0)
    grid = DEFAULT_TEMPERATURE_GRID
    direct = [
        torch.nn.functional.cross_entropy(scores.double().log() / t, gt).item()
        for t in grid
    ]
    nll, conf = nll_and_confidence_over_grid(scores, gt, grid)
    index, values = select_temperature(nll, grid)
    assert values.tolist() == pytest.approx(direct, rel=1e-9)
    assert index == direct.index(min(direct))
    assert 2.0 < grid[index] < 4.5  # the sharpening undone, about 3
    # the confidence is the top-1 probability of the scaled scores, and
    # the top-1 label does not move
    scaled = torch.softmax(scores.double().log() / grid[index], dim=1)
    assert conf[index].tolist() == pytest.approx(
        scaled.max(dim=1).values.tolist()
    )
    assert torch.equal(scaled.argmax(1), scores.argmax(1))
    # ties go to the temperature nearest 1
    flat = torch.zeros(3, 5)
    assert select_temperature(flat, [0.5, 1.2, 0.9])[0] == 2


def test_metric_chooses_the_temperature_on_validation_and_ece_drops():
    scores, gt = overconfident(1)
    metric = LongTailAccuracy(
        class_counts=[500, 200, 60, 30],
        temperature='val',
        select_posthoc_tau=True,
    )
    metrics = evaluate(metric, scores, gt)
    chosen = metrics['lt/temperature_selected']
    nll = torch.nn.functional.cross_entropy(scores.double().log(), gt)
    assert chosen > 1
    assert metrics['lt/nll'] == pytest.approx(nll.item())
    assert metrics['lt/nll_temperature'] < metrics['lt/nll']
    assert metrics['lt/ece_temperature'] < metrics['lt/ece'] / 2
    # ECE after scaling equals a direct loop on the scaled confidences
    scaled = torch.softmax(scores.double().log() / chosen, dim=1)
    conf, pred = scaled.max(dim=1)
    want = loop_table(conf.tolist(), (pred == gt).tolist())[3]
    assert metrics['lt/ece_temperature'] == pytest.approx(want)
    # a fixed temperature: applied as given, nothing chosen
    fixed = LongTailAccuracy(class_counts=[9, 9, 9, 9], temperature=2.0)
    fixed = evaluate(fixed, scores, gt)
    assert 'lt/temperature_selected' not in fixed
    direct = torch.nn.functional.cross_entropy(scores.double().log() / 2, gt)
    assert fixed['lt/nll_temperature'] == pytest.approx(direct.item())
    with pytest.raises(ValueError, match='temperature'):
        LongTailAccuracy(temperature=0.0)
    with pytest.raises(ValueError, match='temperature_grid'):
        LongTailAccuracy(temperature='val', temperature_grid=[])
