"""The statistics pass streams: StatisticsBuilder holds one group of classes
at a time (or one larger class), writes its output rows to a memory-mapped
file when given a scratch folder, leaves no file behind, and gives the
statistics a direct computation gives."""

import os

import torch
from afg_gloo_worker import fill, make_features, run_in_threads, shard

from glag_mm.core import StatisticsBuilder, statistics_builder
from glag_mm.core.class_statistics import _low_rank_factor

COUNTS = [9, 20, 4, 1, 15, 0, 3, 40]
TAIL = torch.tensor([True, False, True, True, False, False, True, False])
SETTINGS = dict(num_donors=2, exact_rows=10, rank=3)


def _build(x, y, idx, **kw):
    builder = fill(StatisticsBuilder(len(COUNTS), x.shape[1], **kw), x, y, idx)
    return builder.finalize(TAIL, all_gather=False, **SETTINGS)


def test_finalize_holds_one_group_of_classes(monkeypatch, tmp_path):
    monkeypatch.setattr(statistics_builder, '_ROUND_BYTES', 4 * 4 * 12)
    groups = []
    gather_group = StatisticsBuilder._gather_group

    def spy(self, *args):
        rows = gather_group(self, *args)
        groups.append(len(rows))
        return rows

    monkeypatch.setattr(StatisticsBuilder, '_gather_group', spy)
    x, y, idx = make_features(COUNTS, 4, seed=5)
    mapped = _build(x, y, idx, scratch=str(tmp_path))
    # at most 12 rows per group unless one class alone is larger
    assert groups == [9, 20, 5, 15, 3, 40]
    assert sum(groups) == len(y) and os.listdir(tmp_path) == []
    assert mapped.rows.device.type == 'cpu'
    in_memory = _build(x, y, idx)
    for key, value in in_memory.tensors().items():
        assert torch.equal(mapped.tensors()[key], value), key
    for c, n in enumerate(COUNTS):
        rows = x[y == c][torch.argsort(idx[y == c])].float()
        mean = rows.double().mean(0).float() if n else torch.zeros(4)
        torch.testing.assert_close(mapped.means[c], mean)
        centred = rows - mapped.means[c]
        a, size = int(mapped.factor_start[c]), int(mapped.factor_size[c])
        factor = mapped.rows[a : a + size]
        if n <= SETTINGS['exact_rows']:  # the centred rows themselves
            assert torch.equal(factor, centred)
        else:
            want, resid = _low_rank_factor(centred, SETTINGS['rank'])
            torch.testing.assert_close(factor, want)
            assert float(mapped.residual[c]) == torch.tensor(resid).item()
        if TAIL[c]:  # anchors: the real centred rows
            a, size = int(mapped.anchor_start[c]), int(mapped.anchor_size[c])
            assert torch.equal(mapped.rows[a : a + size], centred)


def test_ranks_that_do_not_keep_only_send_their_rows():
    x, y, idx = make_features(COUNTS, 6, seed=7)
    single = _build(x, y, idx)
    world = 2

    def finalize(rank, all_gather):
        mine = shard(len(y), world, rank)
        builder = StatisticsBuilder(len(COUNTS), 6)
        fill(builder, x[mine], y[mine], idx[mine])
        return builder.finalize(
            TAIL, all_gather=all_gather, keep=rank == 0, **SETTINGS
        )

    results = run_in_threads(world, finalize)
    assert results[1] is None
    for key, value in single.tensors().items():
        assert torch.equal(results[0].tensors()[key], value), key
