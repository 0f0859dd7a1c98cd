"""Start and end a distributed run of the tools, on CPU as on GPU.

mmengine 0.10 assumes CUDA for torchrun runs: it calls
``torch.cuda.set_device`` while initialising the process group and wraps the
model in DDP with ``device_ids=[LOCAL_RANK]``. Without patching mmengine,
the tools do on a machine without CUDA what the Runner cannot:

* :func:`init_cpu_process_group` starts the gloo group before the Runner is
  built (the Runner then skips its own ``init_dist``);
* :func:`set_cpu_model_wrapper` gives the config
  ``model_wrapper_cfg=dict(type='MMDistributedDataParallel',
  device_ids=None)``, which is what DDP takes for CPU modules.

Where CUDA is available both do nothing and mmengine runs as usual.

:func:`run_and_exit` ends a tool. A finished torchrun process can abort
during interpreter finalisation: a gloo worker thread still frees finished
work objects holding Python-created tensors, and taking the GIL while Python
finalises kills it inside a noexcept destructor ('terminate called without
an active exception', a failed rank after a finished run;
``destroy_process_group()`` does not stop those threads). So a distributed
process waits for the other ranks, runs the exit handlers (log handlers,
visualiser backends, temporary files), flushes stdout and stderr and leaves
with ``os._exit`` before finalisation. A failed run prints its traceback and
leaves with status 1.
"""

import atexit
import logging
import os
import sys
import traceback
from datetime import timedelta
from typing import Callable, Optional

import torch

__all__ = [
    'init_cpu_process_group',
    'set_cpu_model_wrapper',
    'close_logs_and_visualizers',
    'run_and_exit',
]

_DDP_TYPES = ('MMDistributedDataParallel', 'DistributedDataParallel')


def _cpu_only() -> bool:
    return not torch.cuda.is_available()


def init_cpu_process_group(launcher: str, cfg=None) -> bool:
    """Start the gloo process group of a torchrun run on a CPU-only machine.

    Args:
        launcher: the tools' ``--launcher``; only ``'pytorch'`` (torchrun)
            is handled, and only without CUDA.
        cfg: the config, for ``env_cfg.dist_cfg.timeout`` (seconds).

    Returns:
        Whether this call started the group.
    """
    dist = torch.distributed
    if launcher != 'pytorch' or not _cpu_only() or not dist.is_available():
        return False
    if dist.is_initialized():
        return False
    kwargs = {}
    env_cfg = (cfg.get('env_cfg', None) if cfg is not None else None) or {}
    timeout = (env_cfg.get('dist_cfg', None) or {}).get('timeout', None)
    if timeout is not None:
        kwargs['timeout'] = timedelta(seconds=timeout)
    dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs,
    )
    return True


def set_cpu_model_wrapper(cfg) -> None:
    """``model_wrapper_cfg`` with ``device_ids=None`` for CPU DDP runs.

    Changes nothing without a launcher, where CUDA is available, or when the
    config names another wrapper type.
    """
    if cfg.get('launcher', 'none') == 'none' or not _cpu_only():
        return
    wrapper = dict(cfg.get('model_wrapper_cfg', None) or {})
    if wrapper.get('type', 'MMDistributedDataParallel') not in _DDP_TYPES:
        return
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault(
        'find_unused_parameters', cfg.get('find_unused_parameters', False)
    )
    cfg.model_wrapper_cfg = wrapper


def close_logs_and_visualizers() -> None:
    """Close every mmengine visualiser and flush every log handler."""
    from mmengine.logging import MMLogger
    from mmengine.visualization import Visualizer

    for visualizer in list(Visualizer._instance_dict.values()):
        try:
            visualizer.close()
        except Exception as error:  # a backend that was closed already
            print(
                f'closing {visualizer.instance_name}: {error}', file=sys.stderr
            )
    for logger in list(MMLogger._instance_dict.values()):
        for handler in list(logger.handlers):
            handler.flush()
    logging.shutdown()


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken pipe: nothing left to save
            pass


def _exit_code(error: SystemExit) -> int:
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)
    return 1


def run_and_exit(main: Callable[[Optional[list]], None], argv=None) -> None:
    """Run a tool's ``main``; end a distributed process without finalisation.

    Outside a process group this only calls ``main`` (exceptions and exit
    codes as usual). In one, the process ends with ``os._exit``: status 0
    once every rank has finished, else the run's status (1 for an
    exception, whose traceback is printed first).
    """
    try:
        main(argv)
        code = 0
    except SystemExit as error:
        if not _distributed():
            raise
        code = _exit_code(error)
    except BaseException:
        if not _distributed():
            raise
        traceback.print_exc()
        code = 1
    if not _distributed():
        return
    if code == 0:
        try:
            torch.distributed.barrier()  # no rank leaves while one works
        except Exception:
            traceback.print_exc()
            code = 1
    try:
        close_logs_and_visualizers()
        atexit._run_exitfuncs()
    finally:
        _flush_std()
        os._exit(code)


def _distributed() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()
