"""How each class's evaluation features sit against its training features.

A trunk trained on long-tailed data can fit the few images of a tail class
so closely that their features are compact, while the same class's unseen
images spread wider and drift from them. A classifier re-trained on those
training features (cRT) then draws a tail class's region too small. This
module measures that per class, through a checkpoint's own trunk and head:

* ``spread_train``: mean squared distance of the class's training features
  to their mean ``mu_c``;
* ``spread_eval``: the same for its evaluation features, around the same
  training mean ``mu_c`` (so a drift of the mean counts too);
* ``ratio``: ``spread_eval / spread_train`` (1: the training features are
  as spread as unseen ones);
* ``shift``: squared distance between the evaluation mean and ``mu_c``;
* ``train_acc`` / ``eval_acc``: accuracy of the checkpoint's head on each.

The training features are taken with the evaluation split's pipeline (no
augmentation). Used by ``tools/feature_spread.py``.
"""

import math
from copy import deepcopy
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.runner import Runner
from torch import Tensor, nn

from glag_mm.evaluation.functional import per_class_accuracy, shot_groups

from .export import in_order

__all__ = [
    'pipeline_of',
    'with_pipeline',
    'extract_features',
    'spread_table',
    'group_means',
    'format_table',
]


def pipeline_of(dataset_cfg: Any) -> Optional[list]:
    """The innermost ``pipeline`` of a dataset config (wrappers included)."""
    if not isinstance(dataset_cfg, dict):
        return None
    inner = pipeline_of(dataset_cfg.get('dataset'))
    return inner if inner is not None else dataset_cfg.get('pipeline')


def with_pipeline(dataset_cfg: dict, pipeline: Sequence) -> dict:
    """``dataset_cfg`` with every ``pipeline`` in it (wrappers included)
    replaced by ``pipeline``."""
    out = deepcopy(dataset_cfg)
    node = out
    while isinstance(node, dict):
        if 'pipeline' in node:
            node['pipeline'] = deepcopy(list(pipeline))
        node = node.get('dataset')
    return out


def extract_features(
    model: nn.Module, loader_cfg: dict, batch_size: int = 256
) -> Tuple[Tensor, Tensor]:
    """Pooled trunk features (N, D) and labels (N,) of a dataloader config,
    in order, through ``model`` (in eval mode)."""
    feats, labels = [], []
    with torch.no_grad():
        loader = Runner.build_dataloader(in_order(loader_cfg, batch_size))
        for data in loader:
            data = model.data_preprocessor(data, False)
            out = model.extract_feat(data['inputs'])
            feats.append(out[-1] if isinstance(out, (tuple, list)) else out)
            labels.append(
                torch.cat([s.gt_label.view(-1) for s in data['data_samples']])
            )
    return torch.cat(feats).float(), torch.cat(labels).long()


def spread_table(
    train: Tuple[Tensor, Tensor],
    evaluation: Tuple[Tensor, Tensor],
    predict: Callable[[Tensor], Tensor],
    num_classes: int,
) -> List[Dict[str, float]]:
    """One row per class (module docstring); ``predict`` maps features to
    labels (the head's argmax). A class without training or evaluation
    features gets None where it has no value."""
    (ftr, ytr), (fev, yev) = train, evaluation
    acc_tr = per_class_accuracy(predict(ftr), ytr, num_classes)
    acc_ev = per_class_accuracy(predict(fev), yev, num_classes)
    rows = []
    for c in range(num_classes):
        a, b = ftr[ytr == c], fev[yev == c]
        row: Dict[str, Any] = dict(
            cls=c, n_train=int(len(a)), n_eval=int(len(b))
        )
        if len(a) and len(b):
            mu = a.mean(0)
            row['spread_train'] = float(((a - mu) ** 2).sum(1).mean())
            row['spread_eval'] = float(((b - mu) ** 2).sum(1).mean())
            row['ratio'] = row['spread_eval'] / max(row['spread_train'], 1e-12)
            row['shift'] = float(((b.mean(0) - mu) ** 2).sum())
        else:
            row.update(spread_train=None, spread_eval=None, ratio=None)
            row['shift'] = None
        for key, acc in (('train_acc', acc_tr), ('eval_acc', acc_ev)):
            row[key] = None if math.isnan(acc[c]) else float(acc[c])
        rows.append(row)
    return rows


def group_means(
    rows: List[dict], many: float = 100, few: float = 20
) -> Dict[str, Dict[str, Optional[float]]]:
    """Mean ratio, shift and accuracies over the many (> ``many`` training
    images), medium and few (< ``few``) classes; None for an empty group."""
    masks = shot_groups([r['n_train'] for r in rows], many, few)
    out = {}
    for name, mask in masks.items():
        members = [r for r, inside in zip(rows, mask.tolist()) if inside]
        out[name] = {'classes': len(members)}
        for key in ('ratio', 'shift', 'train_acc', 'eval_acc'):
            values = [r[key] for r in members if r[key] is not None]
            out[name][key] = sum(values) / len(values) if values else None
    return out


def _cell(value, digits=2) -> str:
    return 'n/a' if value is None else f'{value:.{digits}f}'


def format_table(rows: List[dict], groups: Dict[str, dict]) -> str:
    """The rows and group means as a Markdown table."""
    lines = [
        '| class | n train | n eval | spread train | spread eval | ratio '
        '| shift | train acc | eval acc |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for r in rows:
        lines.append(
            f'| {r["cls"]} | {r["n_train"]} | {r["n_eval"]} | '
            f'{_cell(r["spread_train"])} | {_cell(r["spread_eval"])} | '
            f'{_cell(r["ratio"])} | {_cell(r["shift"])} | '
            f'{_cell(r["train_acc"], 1)} | {_cell(r["eval_acc"], 1)} |'
        )
    for name, g in groups.items():
        if g['classes']:
            lines.append(
                f'| {name} ({g["classes"]} classes) | | | | | '
                f'{_cell(g["ratio"])} | {_cell(g["shift"])} | '
                f'{_cell(g["train_acc"], 1)} | {_cell(g["eval_acc"], 1)} |'
            )
    return '\n'.join(lines)
