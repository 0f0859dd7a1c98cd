"""A paired bootstrap of the difference of two predictions' accuracy.

Used wherever a setting is chosen on validation: a candidate replaces the
default only where it beats it beyond the noise of the validation images
(``tools/select_settings.py`` for trained settings; ``LongTailAccuracy``'s
``noise_resamples`` for post-hoc tau and tau-norm's tau).
"""

from typing import Any, Dict, Sequence

import numpy as np

CONFIDENCE = 0.95


def bootstrap_indices(size: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, size) image indices drawn with replacement, seeded."""
    return np.random.default_rng(seed).integers(0, size, (resamples, size))


def sample_statistic(
    gt: np.ndarray, pred: np.ndarray, statistic: str, indices: np.ndarray
) -> np.ndarray:
    """The statistic (percent) of each row of ``indices`` (R, N) of images:
    ``top1`` the fraction right, ``class_mean`` the mean over the classes
    drawn of their accuracy (as :func:`glag_mm.evaluation.functional.
    group_results`)."""
    gt, hit = np.asarray(gt), np.asarray(pred) == np.asarray(gt)
    hits = hit[indices].astype(np.float64)
    if statistic == 'top1':
        return hits.mean(axis=1) * 100
    classes = int(gt.max()) + 1
    rows = np.arange(len(indices))[:, None] * classes + gt[indices]
    size = len(indices) * classes
    total = np.bincount(rows.ravel(), minlength=size).reshape(-1, classes)
    right = np.bincount(rows.ravel(), hits.ravel(), minlength=size)
    right = right.reshape(-1, classes)
    drawn = total > 0
    accuracy = np.where(drawn, right / np.maximum(total, 1), 0.0)
    return accuracy.sum(axis=1) / drawn.sum(axis=1) * 100


def paired_bootstrap(
    gt: Sequence[int],
    pred: Sequence[int],
    reference: Sequence[int],
    statistic: str = 'top1',
    resamples: int = 1000,
    seed: int = 0,
) -> Dict[str, Any]:
    """A point's score against the reference's on the same images.

    [prior: Efron & Tibshirani 1993, ch. 13 (percentile interval)]: with
    d = S(pred) - S(reference) on the N validation images and d*_r the same
    difference on resample r (N images drawn with replacement, the same
    draw for both), the result holds ``difference`` (d), ``mean``
    (mean_r d*_r) and ``interval`` (the 2.5th and 97.5th percentiles of
    d*_r, numpy's linear interpolation), percent points.
    """
    gt, pred, reference = (np.asarray(a) for a in (gt, pred, reference))
    if not (gt.shape == pred.shape == reference.shape) or gt.ndim != 1:
        raise ValueError(
            'paired_bootstrap needs three label lists of one length (the '
            f'same images), got {gt.shape}, {pred.shape}, {reference.shape}'
        )
    everything = np.arange(len(gt))[None]
    observed = sample_statistic(gt, pred, statistic, everything)
    observed -= sample_statistic(gt, reference, statistic, everything)
    indices = bootstrap_indices(len(gt), resamples, seed)
    diffs = np.concatenate(
        [  # 100 resamples at a time: bounded memory
            sample_statistic(gt, pred, statistic, rows)
            - sample_statistic(gt, reference, statistic, rows)
            for rows in np.array_split(indices, max(1, resamples // 100))
        ]
    )
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return dict(
        difference=float(observed[0]),
        mean=float(diffs.mean()),
        interval=[float(low), float(high)],
    )


def beyond_noise(comparison: Dict[str, Any]) -> bool:
    """Whether a point beats the reference beyond the noise: the whole
    interval of its difference lies above zero."""
    return comparison['interval'][0] > 0
