"""The runs of a one-factor ablation of GLAG's stage two, for a spec file.

Every row is a shipped config ``<config_dir>ablation/<name>.py``: the
defaults' config with one knob changed (:data:`ABLATION_ROWS`). All rows
train stage two on the seed-0 stage-one model of the spec (run
``'graloss'``, or the one ``stage_one`` names), keep their final
validation's per-image labels (so that ``ablation.md`` can compare each
with the defaults on the same images, see
:mod:`glag_tools.experiments.ablation`) and are tested with post-hoc τ and
the temperature chosen on validation. The rows of the comparison table
(:mod:`glag_tools.experiments.comparison`) close the list: the
val-selected GLAG row (``'selected'``), AFG alone on three seeds and the
stage-one model with no stage two (``'zero_training'``, tested only:
post-hoc τ and τ-norm chosen on validation).
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from .spec import POSTHOC_TAU_FROM_VAL

__all__ = ['ABLATION_ROWS', 'ZERO_TRAINING_TEST', 'ablation_runs']

# (suspect, name, label): the six suspects of the second study
ABLATION_ROWS: Tuple[Tuple[str, str, str], ...] = (
    ('1: tail set', 'tail_0p1', 'tail_threshold 0.1 n_max'),
    ('1: tail set', 'tail_100', 'tail_threshold 100 images'),
    ('1: s_c start', 'init_conf_0p2', 'init_confidence 0.2'),
    ('1: s_c start', 'init_conf_0', 'init_confidence 0'),
    ('2: donor weights', 'donors_uniform', "donor_weighting 'uniform'"),
    ('2: donor weights', 'donors_sqrt', "'sqrt_count_distance'"),
    ('2: donor weights', 'donors_2', 'num_donors 2'),
    ('3: generation', 'ratio_0p25', 'generation_ratio 0.25'),
    ('3: generation', 'ratio_0p5', 'generation_ratio 0.5'),
    ('3: generation', 'balance', "generation 'balance'"),
    ('4: KD', 'kd_head', "kd_logits 'head'"),
    ('4: KD', 'teacher_tau1', 'teacher_tau 1'),
    ('4: KD', 'kd_t2', 'KD temperature 2'),
    ('4: KD', 'kd_t4', 'KD temperature 4'),
    ('5: lr', 'lr_0p03', 'lr 0.03'),
    ('6: s_c rule', 'smoothing_0p5', 'confidence_smoothing 0.5'),
    ('6: s_c rule', 'step_0p02', 'confidence_step 0.02'),
)
# test: post-hoc tau and the temperature chosen on validation (ECE before
# and after temperature scaling); tau-norm does not apply to AFGHead.
_TEST = {
    **POSTHOC_TAU_FROM_VAL,
    'val_evaluator.temperature': 'val',
    'test_evaluator.temperature': 'val',
}
_VAL = {'val_evaluator.samples_file': '{work_dir}/val_samples.json'}
# test_options added to the stage one's for the zero-training rows: its
# linear classifier tau-normalised (Kang et al. 2020, ||w_c||^tau) with
# tau chosen on validation, beside post-hoc tau and the temperature
ZERO_TRAINING_TEST = {
    'model.head.type': 'TauNormHead',
    'val_evaluator.tau_norm': 'val',
    'test_evaluator.tau_norm': 'val',
    'val_evaluator.temperature': 'val',
    'test_evaluator.temperature': 'val',
}


def ablation_runs(
    config_dir: str,
    trunk: Tuple[str, int],
    defaults: str,
    no_kd: str,
    crt: Optional[Tuple[str, Dict[str, Any]]],
    more_seeds: Dict[str, Sequence[int]],
    stage_one: Optional[Dict[str, Any]] = None,
    rows: Optional[Sequence[str]] = None,
    selected: Optional[Dict[str, Any]] = None,
) -> List[Dict[str, Any]]:
    """The ``runs`` of an ablation spec.

    Args:
        config_dir: the dataset's config folder (ending in ``/``); the rows
            are ``<config_dir>ablation/<name>.py``.
        trunk: (stage-one config file, epochs) of the stage-one model,
            seed 0 (run ``'graloss'`` unless ``stage_one`` renames it).
        defaults: GLAG's stage-two config (AFG + KD), run ``'defaults'``.
        no_kd: the AFG-alone config, run ``'no_kd'`` (seed 0).
        crt: (cRT config, its validation-chosen options, e.g. from
            :func:`~glag_tools.experiments.spec.chosen_settings`), run
            ``'crt'`` on seeds 0, 1 and 2; its epochs are the options'
            ``train_cfg.max_epochs`` (default 10). None leaves it out.
        more_seeds: stage-two seeds beyond 0 per run name (the defaults'
            and, after screening, the rows beyond the validation noise).
        stage_one: fields replacing those of the stage-one run (``name``,
            ``label``, ``group``, ``cfg_options``, ``test_options``), e.g.
            a linear probe on a frozen trunk instead of the GraLoss trunk;
            the stage-two runs start from the run it names.
        rows: names of :data:`ABLATION_ROWS` to run (default: all); the
            stage-one run, the defaults and ``'no_kd'`` always run.
        selected: the options of the val-selected GLAG row on the
            defaults' config (e.g. :func:`~glag_tools.experiments.spec.
            chosen_settings` with ``unless_defaults=True``), run
            ``'selected'`` on seeds 0, 1 and 2; empty or None where the
            selection kept the defaults (the defaults are that row).

    Returns:
        The run dicts (see :mod:`glag_tools.experiments.spec`).

    Raises:
        ValueError: ``rows`` names a row :data:`ABLATION_ROWS` lacks.
    """
    known = [row[1] for row in ABLATION_ROWS]
    unknown = sorted(set(rows or ()) - set(known))
    if unknown:
        raise ValueError(
            f'ablation_runs: rows {unknown} are not ablation rows; '
            f'choose among {known}'
        )
    first = dict(
        name='graloss',
        label='GraLoss',
        group='Stage one',
        config=config_dir + trunk[0],
        cfg_options={},
        test_options=dict(POSTHOC_TAU_FROM_VAL),
        epochs=trunk[1],
    )
    first.update(stage_one or {})
    stage_two = dict(
        stage_one_from=first['name'],
        stage_one_seed=0,
        cfg_options=_VAL,
        test_options=_TEST,
        epochs=10,
    )

    def seeds(name: str) -> List[int]:
        return [0] + list(more_seeds.get(name, []))

    runs = [
        first,
        dict(
            name='defaults',
            label=f'GLAG, defaults ({defaults})',
            group='0: defaults',
            config=config_dir + defaults,
            seeds=seeds('defaults'),
            **stage_two,
        ),
    ]
    runs += [
        dict(
            name=name,
            label=label,
            group=suspect,
            config=f'{config_dir}ablation/{name}.py',
            seeds=seeds(name),
            baseline=['defaults'],
            **stage_two,
        )
        for suspect, name, label in ABLATION_ROWS
        if rows is None or name in rows
    ]
    # AFG without distillation (the first study's 'AFG' row): what KD
    # costs or gains, the rarest class included, on this trunk
    runs.append(
        dict(
            name='no_kd',
            label=f'no KD ({no_kd})',
            group='4: KD',
            config=config_dir + no_kd,
            seeds=sorted(set(seeds('no_kd')) | {0, 1, 2}),
            baseline=['defaults'],
            **stage_two,
        )
    )
    # GraLoss + cRT with the first study's validation-chosen setting: the
    # simpler row GLAG has to beat
    if crt is not None:
        crt_config, crt_options = crt
        runs.append(
            dict(
                name='crt',
                label=f'cRT, val-selected ({crt_config})',
                group='reference rows',
                config=config_dir + crt_config,
                seeds=[0, 1, 2],
                baseline=['defaults'],
                **{
                    **stage_two,
                    'cfg_options': {**_VAL, **crt_options},
                    'epochs': crt_options.get('train_cfg.max_epochs', 10),
                },
            )
        )
    # the comparison's rows: GLAG with the settings chosen on validation
    # (where they differ from the defaults) and the stage-one model with no
    # stage two, tested only (one value per trunk)
    if selected:
        runs.append(
            dict(
                name='selected',
                label=f'GLAG, val-selected ({defaults} + selection)',
                group='comparison',
                config=config_dir + defaults,
                seeds=[0, 1, 2],
                baseline=['defaults'],
                **{**stage_two, 'cfg_options': {**_VAL, **selected}},
            )
        )
    runs.append(
        dict(
            name='zero_training',
            label=f'{first["label"]}, no stage two (post-hoc τ, τ-norm)',
            group='comparison',
            config=first['config'],
            seeds=[0],
            stage_one_from=first['name'],
            stage_one_seed=0,
            test_only=True,
            baseline=['defaults'],
            cfg_options=_VAL,
            test_options={**first['test_options'], **ZERO_TRAINING_TEST},
        )
    )
    return runs
