"""The demo's configs (configs/demo/) on a tiny Fashion-MNIST, for tests.

Helpers of tests/test_safe_loading.py and tests/test_bad_inputs.py: the
real stage-one and stage-two configs of the project (GraLoss; AFGHead with
distillation and the feature cache; LWSHead), pointed at a tiny
long-tailed Fashion-MNIST written to a temporary directory, with one short
epoch, so that their checkpoints hold what real runs write.
"""

import os.path as osp
import time
from pathlib import Path

import torch
from mmengine.config import Config
from test_tools import REPO, write_fashion_mnist

from glag_tools import prepare_train_config, train_config

DEMO = Path(REPO) / 'configs' / 'demo'


def write_data(root: Path) -> str:
    """100 images per class; the demo's IF 100 keeps 100 down to 1."""
    return write_fashion_mnist(root, [100] * 10, test_per_class=2)


def demo_config(
    name: str, data_root: str, work_dir, stage_one=None, **options
) -> Config:
    """``configs/demo/<name>_r8_fmnistlt.py``, prepared as tools/train.py.

    Args:
        name: 'graloss', 'glag' (AFGHead + KD + feature cache), 'lws'...
        data_root: from :func:`write_data`.
        work_dir: the run's work_dir.
        stage_one: the stage-one checkpoint of a stage-two config.
        **options: more ``--cfg-options`` (dots as ``__``).
    """
    path = str(DEMO / f'{name}_r8_fmnistlt.py')
    cfg = Config.fromfile(path)
    opts = {
        'train_dataloader.dataset.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'train_dataloader.batch_size': 32,
        'train_cfg.max_epochs': 1,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1,
    }
    if cfg.get('val_dataloader', None):
        opts['val_dataloader.dataset.dataset.data_root'] = data_root
        opts['val_dataloader.dataset.heldout_per_class'] = 2
    if stage_one is not None:
        opts['stage_one_checkpoint'] = str(stage_one)
    opts.update({k.replace('__', '.'): v for k, v in options.items()})
    return prepare_train_config(
        cfg, config_path=path, work_dir=str(work_dir), cfg_options=opts
    )


_last_start = [None]


def train(cfg: Config):
    # A Runner's log folder is <work_dir>/<timestamp to the second>: a run
    # started in the same second as the one before it in the same work_dir
    # would write into the earlier run's folder, so wait for the next second.
    while time.strftime('%Y%m%d_%H%M%S') == _last_start[0]:
        time.sleep(0.05)
    _last_start[0] = time.strftime('%Y%m%d_%H%M%S')
    # distinct experiment names: runners built in the same second would
    # share mmengine's logger (and its file) and message hub otherwise
    runner = train_config(cfg, name='demo')
    _last_start[0] = getattr(runner, 'timestamp', _last_start[0])
    return runner


def checkpoint_files(work_dir) -> dict:
    """name -> (size, mtime_ns) of every checkpoint and metrics file."""
    found = {}
    for path in sorted(Path(work_dir).rglob('*')):
        if path.suffix in ('.pth', '.json') or path.name == 'last_checkpoint':
            stat = path.stat()
            found[str(path.relative_to(work_dir))] = (
                stat.st_size,
                stat.st_mtime_ns,
            )
    return found


class Payload:
    """Unpickling it runs code: it creates the file ``marker``."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        code = f'open({self.marker!r}, "w").close()'
        return (exec, (code,))


def write_payload_checkpoint(good: str, path, marker) -> str:
    """A copy of a real checkpoint whose meta also carries :class:`Payload`."""
    from glag_mm.safe_load import SAFE_GLOBALS

    with torch.serialization.safe_globals(SAFE_GLOBALS):
        ckpt = torch.load(good, map_location='cpu', weights_only=True)
    ckpt['meta']['note'] = Payload(marker)
    torch.save(ckpt, str(path))
    assert not osp.exists(str(marker))
    return str(path)
