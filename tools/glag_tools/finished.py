"""What a finished training leaves: ``stage_done.json`` and its checkpoint.

The one place of two rules the tools share:

* :func:`final_checkpoint`: a run's final checkpoint is the last one it
  saved (mmengine's ``last_ckpt``, else the work_dir's ``last_checkpoint``
  record); a run that saved none gets ``final.pth`` saved now.
* the stage-finished marker ``stage_done.json`` in the work_dir of a stage
  (or of a plain config): written by :func:`write_stage_done` after
  ``runner.train()`` returns, removed by :func:`clear_stage_done` before a
  run starts, read by :func:`read_stage_done`.

:func:`latest_readable_checkpoint` is the automatic resume's choice.
"""

import json
import os
import os.path as osp
import re
import warnings
from typing import Optional

from mmengine.dist import barrier, is_main_process
from mmengine.runner import Runner

from glag_mm.safe_load import UnreadableCheckpointError, check_readable

__all__ = [
    'STAGE_DONE_FILE',
    'final_checkpoint',
    'recorded_checkpoint',
    'latest_readable_checkpoint',
    'read_stage_done',
    'write_stage_done',
    'clear_stage_done',
]

STAGE_DONE_FILE = 'stage_done.json'


def recorded_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint mmengine's ``last_checkpoint`` record names, or None."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        return f.read().strip() or None


def final_checkpoint(runner: Runner) -> str:
    """Path of the last checkpoint the run saved (saved now if none was)."""
    path = runner.message_hub.get_info('last_ckpt')
    if path is None:
        path = recorded_checkpoint(runner.work_dir)
    if path is None:
        filename = 'final.pth'
        runner.save_checkpoint(runner.work_dir, filename)
        barrier()
        path = osp.join(runner.work_dir, filename)
    return path


def read_stage_done(stage_dir: str) -> Optional[dict]:
    """The marker of a finished stage, or None if it has not finished."""
    path = osp.join(stage_dir, STAGE_DONE_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def clear_stage_done(stage_dir: str) -> None:
    path = osp.join(stage_dir, STAGE_DONE_FILE)
    if is_main_process() and osp.isfile(path):
        os.remove(path)


def write_stage_done(name: str, config: str, runner: Runner) -> dict:
    record = dict(
        stage=name,
        config=config,
        checkpoint=final_checkpoint(runner),
        best_checkpoint=runner.message_hub.get_info('best_ckpt'),
        epoch=runner.epoch,
        iter=runner.iter,
    )
    if is_main_process():
        path = osp.join(runner.work_dir, STAGE_DONE_FILE)
        with open(path + '.tmp', 'w') as f:
            json.dump(record, f, indent=2)
        os.replace(path + '.tmp', path)
    barrier()
    return record


_NUMBERED = re.compile(r'^(?:epoch|iter)_(\d+)\.pth$')


def latest_readable_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint an automatic resume should use, or None for none.

    mmengine resumes from the file named in ``work_dir/last_checkpoint``.
    If that file is unreadable (a save cut short by a kill or a full disk),
    it is skipped with a warning and the newest readable ``epoch_N.pth`` /
    ``iter_N.pth`` of the work_dir is returned instead.

    Raises:
        UnreadableCheckpointError: the work_dir has checkpoints and none is
            readable.
    """
    from mmengine.runner import find_latest_checkpoint

    if not osp.isdir(work_dir):
        return None
    latest = find_latest_checkpoint(work_dir)
    if latest is None:  # no run has saved here: start afresh, as mmengine
        return None
    numbered = sorted(
        (
            (int(found.group(1)), name)
            for name in os.listdir(work_dir)
            if (found := _NUMBERED.match(name))
        ),
        reverse=True,
    )
    candidates = [latest]
    candidates += [osp.join(work_dir, name) for _, name in numbered]
    skipped = []
    for path in dict.fromkeys(candidates):
        if not osp.isfile(path):
            continue
        try:
            check_readable(path, crc=True)
        except UnreadableCheckpointError as error:
            skipped.append(path)
            warnings.warn(f'{error} Automatic resume skips it.', stacklevel=2)
            continue
        return path
    if skipped:
        raise UnreadableCheckpointError(
            f'no readable checkpoint in {work_dir!r} to resume from '
            f'({len(skipped)} unreadable: {skipped}); delete them to start '
            'afresh, or give --resume PATH to an intact checkpoint.'
        )
    return None
