"""The library behind ``tools/``: config preparation and the stage driver.

It ships with the scripts (in ``glag_mm/.mim/tools`` of an installed
package), not in the plugin: ``import glag_mm`` does not need it. Importing
it imports the plugin (the registries) first.
"""

import glag_mm  # noqa: F401  (registers the plugin, applies compat)

from .config import (
    DATALOADER_FIELDS,
    STAGE_ONE_PLACEHOLDER,
    ConfigError,
    add_class_counts_hook,
    default_work_dir,
    prepare_test_config,
    prepare_train_config,
    resolve_stage_one_checkpoint,
    set_dataloader_defaults,
    uses_stage_one_checkpoint,
    uses_validation_tau,
)
from .finished import (
    STAGE_DONE_FILE,
    final_checkpoint,
    read_stage_done,
    recorded_checkpoint,
)
from .stages import (
    FinishedRun,
    Stage,
    build_runner,
    finished_checkpoint,
    is_multi_stage,
    load_stages,
    run_config,
    run_stages,
    select_stage,
    stage_work_dir,
    train_config,
)

__all__ = [
    'ConfigError',
    'DATALOADER_FIELDS',
    'FinishedRun',
    'STAGE_ONE_PLACEHOLDER',
    'STAGE_DONE_FILE',
    'Stage',
    'add_class_counts_hook',
    'build_runner',
    'default_work_dir',
    'final_checkpoint',
    'finished_checkpoint',
    'is_multi_stage',
    'load_stages',
    'prepare_test_config',
    'prepare_train_config',
    'read_stage_done',
    'recorded_checkpoint',
    'resolve_stage_one_checkpoint',
    'run_config',
    'run_stages',
    'select_stage',
    'set_dataloader_defaults',
    'stage_work_dir',
    'train_config',
    'uses_stage_one_checkpoint',
    'uses_validation_tau',
]
