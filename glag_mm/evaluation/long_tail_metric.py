"""Overall and many / medium / few-shot accuracy (rules: :mod:`.functional`,
docs/method.md "Evaluation conventions")."""

import json
import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..core import log_prior
from ..core.checks import check_choice, check_integer, check_number
from ..runtime import resolve_class_counts
from .calibration_error import ECE_BINS, reliability_bins
from .functional import group_results, rebalanced_labels, shot_groups
from .posthoc_tau import (
    DEFAULT_TAU_GRID,
    POSTHOC_CRITERIA,
    ValSelectedTau,
    posthoc_labels_over_grid,
)
from .summaries import PerClassAccuracy
from .tau_norm import DEFAULT_TAU_NORM_GRID, tau_norm_labels_over_grid
from .temperature import (
    DEFAULT_TEMPERATURE_GRID,
    nll_and_confidence_over_grid,
    select_temperature,
)

OWNER = 'LongTailAccuracy'


def _check(name: str, value: Any) -> Optional[float]:
    """A number >= 0 (None: switched off)."""
    if value is None:
        return None
    return check_number(name, value, at_least=0, owner=OWNER)


def write_samples(path: str, samples: Dict[str, List[int]]) -> None:
    """Write per-image labels as JSON (replacing the file in one step)."""
    if osp.dirname(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        json.dump(samples, f)
    os.replace(path + '.tmp', path)


@METRICS.register_module()
class LongTailAccuracy(ValSelectedTau, BaseMetric):
    """Top-1 accuracy overall and per many / medium / few-shot group.

    Results (prefix ``'lt'``, percent): ``top1`` (sample mean), ``many`` /
    ``medium`` / ``few`` (mean per-class accuracy of the group, the OLTR /
    decoupling convention; absent classes and empty groups are left out so
    every value is finite), ``class_mean``; with ``pred_score`` and
    ``ece_bins``: ``ece`` overall and per group and ``reliability`` (the
    table ``tools/plot_reliability.py`` draws); ``*_posthoc`` with
    ``posthoc_tau`` (argmax_j log p_ij - tau log pi_j, applied on top of
    what the head returns), ``*_rebalanced`` with ``rebalance_tau`` (GALA's
    argmax_j p_ij / s_j**tau: 1.0 CIFAR, 1.7 ImageNet-LT, 1.5 iNaturalist,
    1.4 Places-LT); ``per_class`` (a :class:`PerClassAccuracy` on the main
    process, NaN for classes without samples).

    The groups (more than ``many_threshold`` / fewer than ``few_threshold``
    training images) come from the training counts, never the evaluation
    set: ``class_counts`` or :func:`glag_mm.runtime.get_train_class_counts`.

    ``posthoc_tau='val'``: on the validation split every tau of
    ``posthoc_tau_grid`` is scored and the best by ``posthoc_tau_criterion``
    (``'class_mean'`` or ``'top1'``, ties to the smallest tau) is reported
    as ``posthoc_tau_selected``; on the test split the tau last chosen on
    validation is applied, never compared on test labels.
    ``select_posthoc_tau`` (None: :class:`~glag_mm.engine.PosthocTauHook`
    decides by loop) says which split this metric evaluates.

    ``tau_norm`` (a number, ``'val'`` or None): tau-normalisation of the
    classifier (Kang et al. 2020, :mod:`.tau_norm`; the head must be a
    ``TauNormHead``), ``*_tau_norm`` results, ``tau_norm_selected`` with
    ``'val'`` (grid ``tau_norm_grid``, criterion ``posthoc_tau_criterion``).
    ``temperature`` (a number > 0, ``'val'`` or None): temperature scaling
    (Guo et al. 2017, :mod:`.temperature`): ``nll`` and ``ece`` of the
    scores as they are, ``nll_temperature`` and ``ece_temperature`` after
    scaling, ``temperature_selected`` with ``'val'`` (least NLL over
    ``temperature_grid``). Every ``'val'`` option is chosen on the
    validation split and applied on test as post-hoc tau is.
    ``noise_resamples`` > 0 (0: off): post-hoc tau and tau-norm's tau
    chosen on validation keep their grid's first value (list the default,
    e.g. 0.0, first) unless the best value beats it beyond the noise of
    the validation images (a paired bootstrap of that many draws,
    ``noise_seed``; 95 % interval of the gain above zero), the rule
    ``tools/select_settings.py`` applies to trained settings; reported as
    ``<option>_gain``, ``_gain_low``, ``_gain_high``, ``_best_by_score``
    and ``_beyond_noise`` (1 or 0).

    ``samples_file``: a JSON file that each evaluation overwrites with its
    per-image labels (the last evaluation's remain): ``gt``, ``pred`` and,
    where computed, ``pred_posthoc`` / ``pred_tau_norm`` (at the tau
    reported) and ``pred_rebalanced``, one entry per image in the gathered
    order. The selection tool reads it for the noise of a validation score.

    Per sample only labels (and post-hoc labels, top-1 confidence) are kept;
    the C scores only for ``rebalance_tau``, which needs column sums over
    the whole set (0.8 GB gathered on rank 0 for iNaturalist 2018's test).
    """

    default_prefix: Optional[str] = 'lt'

    def __init__(
        self,
        class_counts: Optional[Sequence[int]] = None,
        many_threshold: float = 100,
        few_threshold: float = 20,
        posthoc_tau: Union[float, str, None] = None,
        posthoc_tau_grid: Sequence[float] = DEFAULT_TAU_GRID,
        posthoc_tau_criterion: str = 'class_mean',
        select_posthoc_tau: Optional[bool] = None,
        rebalance_tau: Optional[float] = None,
        ece_bins: int = ECE_BINS,
        per_class: bool = True,
        reliability: bool = True,
        samples_file: Optional[str] = None,
        tau_norm: Union[float, str, None] = None,
        tau_norm_grid: Sequence[float] = DEFAULT_TAU_NORM_GRID,
        temperature: Union[float, str, None] = None,
        temperature_grid: Sequence[float] = DEFAULT_TEMPERATURE_GRID,
        noise_resamples: int = 0,
        noise_seed: int = 0,
        **kwargs,  # BaseMetric's collect_device, prefix, collect_dir
    ) -> None:
        super().__init__(**kwargs)
        self.class_counts = class_counts
        if class_counts is not None:
            self.class_counts = self._counts()
        self.many_threshold = _check('many_threshold', many_threshold)
        self.few_threshold = _check('few_threshold', few_threshold)
        if self.few_threshold > self.many_threshold:
            raise ValueError(
                f'LongTailAccuracy: few_threshold ({few_threshold}) must not '
                f'exceed many_threshold ({many_threshold}), or the few- and '
                'many-shot groups would overlap.'
            )
        self.from_val = frozenset()
        self._set_option('posthoc_tau', posthoc_tau, posthoc_tau_grid)
        self._set_option('tau_norm', tau_norm, tau_norm_grid)
        self._set_option('temperature', temperature, temperature_grid, 0)
        self._classifier = None  # (norms, bias) of the head: tau_norm
        self.noise_resamples = check_integer(
            'noise_resamples', noise_resamples, at_least=0, owner=OWNER
        )
        self.noise_seed = check_integer('noise_seed', noise_seed, owner=OWNER)
        self.posthoc_tau_criterion = check_choice(
            'posthoc_tau_criterion',
            posthoc_tau_criterion,
            POSTHOC_CRITERIA,
            OWNER,
        )
        if select_posthoc_tau not in (None, True, False):
            raise TypeError(
                'LongTailAccuracy: select_posthoc_tau must be True, False or '
                f'None, got {select_posthoc_tau!r}'
            )
        self.select_posthoc_tau = select_posthoc_tau
        self.rebalance_tau = _check('rebalance_tau', rebalance_tau)
        self.ece_bins = check_integer(  # 0 switches ECE off
            'ece_bins', ece_bins, at_least=0, owner=OWNER
        )
        self.per_class = bool(per_class)
        self.reliability = bool(reliability)
        if samples_file is not None and not isinstance(samples_file, str):
            raise TypeError(
                'LongTailAccuracy: samples_file must be a path (str) or None, '
                f'got {samples_file!r}'
            )
        self.samples_file = samples_file

    def _set_option(
        self, name: str, value: Any, grid: Any, above: Optional[float] = None
    ) -> None:
        """``self.<name>`` (a number >= 0, or > ``above``; None: off; or
        chosen on validation) and ``self.<name>_grid``."""
        if isinstance(value, str) and value != 'val':
            raise TypeError(
                f"LongTailAccuracy: {name} must be a number, 'val' (chosen on "
                f'the validation split) or None, got {value!r}'
            )
        if value == 'val':
            self.from_val = self.from_val | {name}
        bounds = dict(at_least=0) if above is None else dict(above=above)

        def check(key, number):
            return check_number(key, number, owner=OWNER, **bounds)

        setattr(self, name, None)
        if value not in ('val', None):
            setattr(self, name, check(name, value))
        if not isinstance(grid, (list, tuple)) or not grid:
            raise ValueError(
                f'LongTailAccuracy: {name}_grid must be a non-empty list of '
                f'values {"> 0" if above is not None else ">= 0"}, e.g. '
                f'[0.5, 1.0, 1.5], got {grid!r}'
            )
        setattr(
            self, f'{name}_grid', tuple(check(f'{name}_grid', v) for v in grid)
        )

    def set_classifier(self, norms: torch.Tensor, bias: torch.Tensor) -> None:
        """The head's weight norms ||w_c|| and bias b_c (C,) that
        ``tau_norm`` rescales with (:class:`~glag_mm.engine.PosthocTauHook`
        gives them from ``TauNormHead``)."""
        self._classifier = (norms.detach().cpu(), bias.detach().cpu())

    def _tau_norm_labels(self, sample: dict, taus) -> List[int]:
        """A sample's tau-normalised labels at every tau of ``taus``."""
        logits = sample.get('pred_logits')
        if logits is None or self._classifier is None:
            raise ValueError(
                'LongTailAccuracy(tau_norm=...) needs the logits and the '
                "classifier's weight norms: use model.head=dict(type='"
                "TauNormHead', ...) (a LinearClsHead whose predictions carry "
                "their logits) and custom_hooks=[dict(type='PosthocTauHook')]"
                " (glag_mm's tools add it)."
            )
        logits = logits.detach().cpu().flatten()
        norms, bias = self._classifier
        return tau_norm_labels_over_grid(logits, bias, norms, taus)

    def _counts(self, num_classes: Optional[int] = None) -> List[int]:
        """``class_counts``, else those ClassCountsHook counted; checked."""
        return resolve_class_counts(
            self.class_counts, num_classes, owner=OWNER
        )

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the labels (and scores only if re-balancing needs them)."""
        taus = self.posthoc_taus() if data_samples else None
        norm_taus = self.values_of('tau_norm') if data_samples else None
        temperatures = self.values_of('temperature') if data_samples else None
        log_pi = None
        for sample in data_samples:
            gt = sample.get('gt_label')
            if gt is None or torch.as_tensor(gt).numel() != 1:
                raise ValueError(
                    'LongTailAccuracy needs one gt_label per data sample '
                    '(single-label classification).'
                )
            score = sample.get('pred_score')
            label = sample.get('pred_label')
            if label is None and score is None:
                raise ValueError(
                    'LongTailAccuracy: a data sample has neither pred_score '
                    'nor pred_label; evaluate a classifier in predict mode.'
                )
            if label is None:
                label = score.argmax()
            result = {'gt': int(gt), 'pred': int(label)}
            if score is None:
                if (taus, norm_taus, temperatures) != (None,) * 3 or (
                    self.rebalance_tau is not None
                ):
                    raise ValueError(
                        'LongTailAccuracy: posthoc_tau / tau_norm / '
                        'temperature / rebalance_tau need pred_score in the '
                        'data samples.'
                    )
            else:
                score = score.detach().cpu().flatten()
                result['num_classes'] = score.numel()
                if self.ece_bins and 0 <= result['pred'] < score.numel():
                    result['conf'] = float(score[result['pred']])
                if taus is not None:  # labels at each tau, not the scores
                    if log_pi is None:  # once a batch
                        log_pi = log_prior(self._counts(score.numel()))
                    result['pred_posthoc'] = posthoc_labels_over_grid(
                        score, log_pi, taus
                    ).tolist()
                if norm_taus is not None:
                    result['pred_tau_norm'] = self._tau_norm_labels(
                        sample, norm_taus
                    ).tolist()
                in_range = 0 <= int(gt) < score.numel()  # else: refused later
                if temperatures is not None and in_range:  # NLL, conf per T
                    nll, conf = nll_and_confidence_over_grid(
                        score[None], torch.tensor([int(gt)]), temperatures
                    )
                    result['nll_t'] = nll[:, 0].tolist()
                    p_y = max(float(score[int(gt)]), 1e-300)
                    result['nll'] = -math.log(p_y)
                    result['conf_t'] = conf[:, 0].tolist()
                if self.rebalance_tau is not None:  # clone: not the batch
                    result['score'] = score.float().clone()
            self.results.append(result)

    def _temperature_results(
        self, results: List[dict], hit: torch.Tensor
    ) -> Dict[str, float]:
        """``nll`` (T = 1), ``nll_temperature`` and ``ece_temperature`` at
        the temperature applied (chosen here on validation: least NLL)."""
        nll = torch.tensor([r['nll_t'] for r in results], dtype=torch.float64)
        nll = nll.T  # (G, N)
        grid = self.values_of('temperature')
        index, metrics = self.chosen_index(
            'temperature', lambda: select_temperature(nll, grid)
        )
        conf = torch.tensor([r['conf_t'][index] for r in results])
        metrics['nll'] = sum(r['nll'] for r in results) / len(results)
        metrics['nll_temperature'] = nll[index].mean().item()
        if self.ece_bins:
            table = reliability_bins(conf, hit, self.ece_bins)
            metrics['ece_temperature'] = table['ece']
        return metrics

    def _num_classes(self, results: List[dict]) -> Optional[int]:
        sizes = {r['num_classes'] for r in results if 'num_classes' in r}
        if len(sizes) > 1:
            raise ValueError(
                f'LongTailAccuracy: pred_score sizes differ: {sorted(sizes)}'
            )
        if sizes:
            return sizes.pop()
        classes = (self.dataset_meta or {}).get('classes')
        return len(classes) if classes else None

    def compute_metrics(self, results: List[dict]) -> Dict[str, Any]:
        """Compute the accuracies from the gathered per-sample results."""
        if not results:
            raise ValueError('LongTailAccuracy: no results to evaluate.')
        counts = self._counts(self._num_classes(results))
        num_classes = len(counts)
        target = torch.tensor([r['gt'] for r in results], dtype=torch.long)
        pred = torch.tensor([r['pred'] for r in results], dtype=torch.long)
        for name, labels in (('ground-truth', target), ('predicted', pred)):
            if labels.min() < 0 or labels.max() >= num_classes:
                raise ValueError(
                    f'LongTailAccuracy: {name} labels must lie in '
                    f'[0, {num_classes}) to match the {num_classes} class '
                    f'counts, got [{labels.min()}, {labels.max()}].'
                )
        groups = shot_groups(counts, self.many_threshold, self.few_threshold)

        metrics, per_class = group_results(pred, target, groups)
        samples = dict(gt=target.tolist(), pred=pred.tolist())
        table = None
        if self.ece_bins and all('conf' in r for r in results):
            conf = [r['conf'] for r in results]
            conf = torch.tensor(conf, dtype=torch.float64)
            hit = pred == target
            table = reliability_bins(conf, hit, self.ece_bins)
            metrics['ece'] = table['ece']
            for name, class_mask in groups.items():  # samples of its classes
                m = class_mask[target]
                if m.any():
                    ece = reliability_bins(conf[m], hit[m], self.ece_bins)
                    metrics[f'ece_{name}'] = ece['ece']
        if all('pred_posthoc' in r for r in results):
            labels = torch.tensor([r['pred_posthoc'] for r in results])
            posthoc, labels = self.posthoc_results(labels.T, target, groups)
            metrics.update(posthoc)
            samples['pred_posthoc'] = labels.tolist()
        if all('pred_tau_norm' in r for r in results):
            labels = torch.tensor([r['pred_tau_norm'] for r in results])
            tau_norm, labels = self.grid_results(
                'tau_norm', labels.T, target, groups, '_tau_norm'
            )
            metrics.update(tau_norm)
            samples['pred_tau_norm'] = labels.tolist()
        if all('nll_t' in r for r in results):
            metrics.update(self._temperature_results(results, pred == target))
        if self.rebalance_tau is not None:
            scores = torch.stack([r['score'] for r in results])
            rebalanced = rebalanced_labels(scores, self.rebalance_tau)
            metrics.update(
                group_results(rebalanced, target, groups, '_rebalanced')[0]
            )
            samples['pred_rebalanced'] = rebalanced.tolist()
        if self.samples_file is not None:
            write_samples(self.samples_file, samples)
        if self.per_class:
            metrics['per_class'] = PerClassAccuracy(per_class.tolist())
        if self.reliability and table is not None:
            metrics['reliability'] = table
        return metrics
