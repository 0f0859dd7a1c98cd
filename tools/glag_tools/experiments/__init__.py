"""The library behind tools/run_experiments.py and tools/make_report.py.

Experiment specs (:mod:`.spec`), the per-run metrics files and their
summaries (:mod:`.records`), the results tables (:mod:`.tables`), the
jobs a spec still needs (:mod:`.plan`), the runner that trains and tests
them (:mod:`.runner`), what a tested run's metrics file holds
(:mod:`.recording`) and the report plots (:mod:`.plots`). Not imported by
``import glag_mm``; the tools import it explicitly.
"""

from .ablation import write_ablation_table
from .plan import (
    Context,
    ExperimentError,
    Job,
    describe_plan,
    format_cfg_options,
    plan_jobs,
)
from .records import (
    COLUMNS,
    RELIABILITY,
    RunSummary,
    load_records,
    mean_std,
    metrics_path,
    pooled_reliability,
    read_json,
    reliability_table,
    summarise,
    write_json,
)
from .runner import run_experiment, run_job
from .spec import (
    ExperimentSpec,
    RunSpec,
    SpecError,
    load_spec,
    spec_from_dict,
)
from .tables import confidence_spearman, write_confidence_table, write_tables

__all__ = [
    'COLUMNS',
    'Context',
    'ExperimentError',
    'ExperimentSpec',
    'Job',
    'RELIABILITY',
    'RunSpec',
    'RunSummary',
    'SpecError',
    'confidence_spearman',
    'describe_plan',
    'format_cfg_options',
    'load_records',
    'load_spec',
    'mean_std',
    'metrics_path',
    'plan_jobs',
    'pooled_reliability',
    'read_json',
    'reliability_table',
    'run_experiment',
    'run_job',
    'spec_from_dict',
    'summarise',
    'write_ablation_table',
    'write_json',
    'write_confidence_table',
    'write_tables',
]
