"""The stage-one checkpoint of a stage-two config: the one key
``stage_one_checkpoint`` (and the ``'{stage_one_checkpoint}'`` string of
configs written for earlier versions).

This module is part of the library behind ``tools/`` (``glag_tools``).
"""

import os.path as osp
from typing import Any, Optional

from mmengine.config import Config

from .config_hooks import ConfigError, add_default_hook

STAGE_ONE_PLACEHOLDER = '{stage_one_checkpoint}'


def _find(node: Any, text: str, key: str = '') -> Optional[str]:
    """Dotted key of the first string under ``node`` holding ``text``."""
    if isinstance(node, str):
        return key if text in node else None
    if isinstance(node, (list, tuple)):
        node = dict(enumerate(node))
    for sub, value in node.items() if isinstance(node, dict) else ():
        found = _find(value, text, f'{key}.{sub}'.lstrip('.'))
        if found is not None:
            return found
    return None


def _substitute(node: Any, text: str, value: str) -> Any:
    if isinstance(node, str):
        return node.replace(text, value)
    if isinstance(node, dict):
        for key in list(node.keys()):
            node[key] = _substitute(node[key], text, value)
        return node
    if isinstance(node, list):
        return [_substitute(v, text, value) for v in node]
    if isinstance(node, tuple):
        return tuple(_substitute(v, text, value) for v in node)
    return node


def _placeholder_key(cfg: Config) -> Optional[str]:
    """Dotted key of the first ``'{stage_one_checkpoint}'`` in the config."""
    rest = {k: cfg[k] for k in cfg.keys() if k != 'stage_one_checkpoint'}
    return _find(rest, STAGE_ONE_PLACEHOLDER)


def uses_stage_one_checkpoint(cfg: Config) -> bool:
    """Whether any string of the config holds ``'{stage_one_checkpoint}'``."""
    return _placeholder_key(cfg) is not None


def resolve_stage_one_checkpoint(
    cfg: Config, fallback: Optional[str] = None, owner: str = 'this config'
) -> Config:
    """Hand a stage-two config the stage-one checkpoint.

    The path is ``cfg.stage_one_checkpoint`` when set (e.g. with
    ``--cfg-options stage_one_checkpoint=PATH``), else ``fallback`` (the
    two-stage driver passes the checkpoint of the stage named in
    ``init_from``), for a config that has the key (the stage-two bases set
    it to None). It is stored in ``cfg.stage_one_checkpoint``, which
    :class:`~glag_mm.engine.StageOneCheckpointHook` hands to the parts that
    read it when the run starts (the same key under mmpretrain's tools).
    Configs written for earlier versions may still hold the string
    ``'{stage_one_checkpoint}'``; it is replaced by the path. A config that
    has neither is returned unchanged.

    Raises:
        ConfigError: the config uses the placeholder and no path is known,
            or the path does not name a file.
    """
    path = cfg.get('stage_one_checkpoint', None)
    if path in (None, '', STAGE_ONE_PLACEHOLDER):
        if 'stage_one_checkpoint' not in cfg and not uses_stage_one_checkpoint(
            cfg
        ):
            return cfg
        path = fallback
    if path is None and not uses_stage_one_checkpoint(cfg):
        return cfg  # the parts that read it at run time say what to set
    if path is None:
        raise ConfigError(
            f'{owner} needs the stage-one checkpoint (it uses '
            f"'{STAGE_ONE_PLACEHOLDER}' at {_placeholder_key(cfg)}): pass "
            '--cfg-options stage_one_checkpoint=PATH, or train it through a '
            'two-stage config whose stage sets init_from; if nothing should '
            'read that key (a variable inherited from a stage-two base), set '
            'it to None in the config.'
        )
    path = str(path)
    if not osp.isfile(path):
        raise ConfigError(
            f'stage-one checkpoint {path!r} (stage_one_checkpoint, needed by '
            f'{owner}) does not exist; pass an existing file with '
            '--cfg-options stage_one_checkpoint=PATH or train stage one '
            'first.'
        )
    cfg.stage_one_checkpoint = path
    add_default_hook(cfg, 'StageOneCheckpointHook')  # publishes it
    for key in list(cfg.keys()):
        cfg[key] = _substitute(cfg[key], STAGE_ONE_PLACEHOLDER, path)
    return cfg
