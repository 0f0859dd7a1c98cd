"""Export a trained classifier for deployment (the library of tools/export.py).

The whole classifier -- the data preprocessor's normalisation, the trunk,
the head's ``pre_logits`` (Tukey's transform in ``AFGHead``) and its linear
layer -- goes through the model's own ``forward(mode='tensor')``, so what is
exported is what the model computes, whatever the head does inside:

* ``torchscript``: ``torch.jit.trace`` of :class:`ExportableClassifier`;
* ``onnx``: ``torch.onnx.export`` of the same module (needs the optional
  ``onnx`` and ``onnxruntime`` packages, ``pip install glag_mm[export]``);
* ``state_dict``: a tensors-only checkpoint without training-only state
  (``AFGHead``'s adaptive confidence) that loads with
  ``torch.load(weights_only=True)``; with ``linear_head=True`` the head is
  rewritten as a plain ``LinearClsHead``, which is refused unless it is
  exact (``AFGHead`` with lambda = 1).

Every export is checked on a batch against the PyTorch model's predictions
before its file is written (max abs difference of the logits and of the
scores of ``test_step`` within ``atol``).

Input: what the config's test pipeline delivers, (N, C, H, W) in its
channel order (BGR for images mmcv decodes; the graph flips to RGB where the
data preprocessor's ``to_rgb`` says so) and its dtype, uint8 pixels 0..255
for image files; the graph casts to float32 before normalising. An ONNX
input has one dtype, the check batch's: ``input_dtype`` in the returned
info (``--shape`` checks on random uint8 pixels).
"""

import os
import os.path as osp
from copy import deepcopy
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from .config import ConfigError, resolve_stage_one_checkpoint
from .stages import is_multi_stage, load_stages, select_stage

__all__ = [
    'FORMATS',
    'ExportableClassifier',
    'load_export_config',
    'model_config',
    'build_classifier',
    'in_order',
    'sample_batch',
    'deploy_state_dict',
    'linear_head_config',
    'export_classifier',
]

FORMATS = ('torchscript', 'onnx', 'state_dict')


class ExportableClassifier(nn.Module):
    """Raw pixels (N, C, H, W), any dtype (uint8 from an image pipeline) ->
    float32 logits (N, num_classes).

    Casts to float32, then applies what mmpretrain's ``ClsDataPreprocessor``
    applies at test time (BGR -> RGB where ``to_rgb`` and 3 channels, then
    ``(x - mean) / std``) and then the model's ``forward(inputs,
    mode='tensor')``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        pre = getattr(model, 'image_preprocessor', model.data_preprocessor)
        self.flip_channels = bool(getattr(pre, 'to_rgb', False))
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        if self.normalize:
            self.register_buffer('mean', pre.mean.detach().clone())
            self.register_buffer('std', pre.std.detach().clone())

    def forward(self, inputs: Tensor) -> Tensor:
        x = inputs.float()
        if self.flip_channels and x.shape[1] == 3:
            x = x.flip(1)
        if self.normalize:
            x = (x - self.mean) / self.std
        out = self.model(x, mode='tensor')
        return out[-1] if isinstance(out, (tuple, list)) else out


def load_export_config(
    config: str, stage: Optional[str] = None
) -> Tuple[Config, str]:
    """The config to export with (a two-stage config: its last stage)."""
    cfg = Config.fromfile(config)
    if not is_multi_stage(cfg):
        if stage is not None:
            raise ConfigError(
                f'--stage {stage} needs a two-stage config; {config} has no '
                'stages.'
            )
        return cfg, config
    stages = load_stages(cfg, config)
    chosen = select_stage(stages, stage) if stage else stages[-1]
    stage_cfg = Config.fromfile(chosen.config)
    if chosen.cfg_options:
        stage_cfg.merge_from_dict(chosen.cfg_options)
    return stage_cfg, chosen.config


def model_config(cfg: Config) -> dict:
    """``cfg.model`` as mmengine's Runner builds it: the config's top-level
    ``data_preprocessor`` (where mmpretrain's configs set the mean and std)
    goes into the model unless the model sets its own."""
    model = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else cfg.model
    model = deepcopy(model)
    pre = cfg.get('data_preprocessor', None)
    if pre is not None:
        pre = pre.to_dict() if hasattr(pre, 'to_dict') else pre
        model.setdefault('data_preprocessor', deepcopy(pre))
    return model


def build_classifier(cfg: Config, checkpoint: str) -> nn.Module:
    """The config's model in eval mode with the checkpoint's weights."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain') or 'mmpretrain')
    resolve_stage_one_checkpoint(cfg, checkpoint, 'the exported config')
    model = MODELS.build(model_config(cfg))
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    return model.eval()


def in_order(loader_cfg: dict, batch_size: int) -> dict:
    """A copy of a dataloader config that reads the dataset once, in order,
    in this process, ``batch_size`` samples at a time."""
    cfg = deepcopy(loader_cfg)
    cfg.update(
        batch_size=batch_size,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
    )
    cfg.pop('batch_sampler', None)
    return cfg


def sample_batch(
    cfg: Config, num: int = 8, shape: Optional[Sequence[int]] = None
) -> dict:
    """The first ``num`` samples of the test dataloader (or random pixels).

    With ``shape`` (N, C, H, W), random pixels in [0, 255] are used instead,
    for a config whose test data is not at hand.
    """
    if shape is not None:
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, tuple(shape), generator=gen)
        return dict(inputs=list(images.to(torch.uint8)))
    loader_cfg = cfg.get('test_dataloader', None) or cfg.get(
        'val_dataloader', None
    )
    if not loader_cfg:
        raise ConfigError(
            'the config has no test_dataloader to take a check batch from; '
            'pass --shape N C H W to check on random pixels.'
        )
    try:
        loader = Runner.build_dataloader(in_order(loader_cfg, num))
        return next(iter(loader))
    except (FileNotFoundError, OSError) as error:
        raise ConfigError(
            f'cannot read the test data for the check batch ({error}); '
            'point the config at the data or pass --shape N C H W.'
        ) from error


def _reference(model: nn.Module, batch: dict) -> Tuple[Tensor, Tensor, dict]:
    """Raw pixels as the pipeline delivers them (dtype kept), the model's
    logits and test_step scores on the batch."""
    with torch.no_grad():
        data = model.data_preprocessor(deepcopy(batch), False)
        logits = model(data['inputs'], mode='tensor')
        logits = logits[-1] if isinstance(logits, (tuple, list)) else logits
        scores = None
        if batch.get('data_samples') is not None:
            preds = model.test_step(deepcopy(batch))
            scores = torch.stack([p.pred_score for p in preds])
    raw = torch.stack([torch.as_tensor(x) for x in batch['inputs']])
    return raw, logits, dict(scores=scores)


def _check(name: str, got: Tensor, want: Tensor, atol: float) -> float:
    diff = float((got.float() - want.float()).abs().max())
    if not diff <= atol:
        raise RuntimeError(
            f'{name} differs from the PyTorch model by {diff:.3g} (max abs) '
            f'on the check batch, more than atol={atol:g}; nothing written.'
        )
    return diff


def deploy_state_dict(model: nn.Module) -> Dict[str, Tensor]:
    """The model's weights without training-only state, as plain tensors.

    Drops the buffers a module names in its ``training_state_buffers``
    attribute (``AFGHead``: the adaptive confidence state); the class
    statistics of stage two never enter a checkpoint in the first place.
    """
    drop = set()
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        for buf in getattr(module, 'training_state_buffers', ()) or ():
            drop.add(prefix + buf)
    return {
        key: value.detach().cpu().clone()
        for key, value in model.state_dict().items()
        if key not in drop
    }


def linear_head_config(model_cfg: dict, head: nn.Module) -> dict:
    """``model_cfg`` with its head as a plain ``LinearClsHead``.

    Exact only where the head computes ``fc(feats[-1])``: an ``AFGHead``
    (or any head with ``tukey_lambda``) with lambda = 1, or on signed
    features (``signed_features``: the head uses lambda = 1).

    Raises:
        ConfigError: a Tukey lambda other than 1, or a head without ``fc``.
    """
    lam = getattr(head, 'tukey_lambda', None)
    name = type(head).__name__
    identity = bool(getattr(head, 'signed_features', False))  # lam 1 used
    if lam is not None and float(lam) != 1.0 and not identity:
        raise ConfigError(
            f"{name} applies Tukey's transform x ** {float(lam):g} to the "
            'features before its linear layer; a plain LinearClsHead would '
            'drop it and predict differently. Export the whole classifier '
            '(--format torchscript or onnx), or keep the head '
            '(--format state_dict without --linear-head); the conversion is '
            'exact only for tukey_lambda=1.'
        )
    if not isinstance(getattr(head, 'fc', None), nn.Linear):
        raise ConfigError(
            f'{name} has no linear layer fc to carry over; --linear-head '
            'converts AFGHead (tukey_lambda=1) or LinearClsHead only.'
        )
    cfg = deepcopy(model_cfg)
    old = cfg['head']
    cfg['head'] = dict(
        type='LinearClsHead',
        num_classes=old['num_classes'],
        in_channels=old['in_channels'],
        topk=old.get('topk', (1,)),
        loss=old.get('loss', dict(type='CrossEntropyLoss')),
    )
    return cfg


def _save_state_dict(
    model: nn.Module,
    cfg: Config,
    out: str,
    batch: dict,
    want: Tensor,
    atol: float,
    linear_head: bool,
) -> dict:
    state = deploy_state_dict(model)
    model_cfg = model_config(cfg)
    if linear_head:
        model_cfg = linear_head_config(model_cfg, model.head)
        state.pop('head.signed_features', None)  # a plain linear head
    # rebuild from the written tensors alone: the file is what gets checked
    check_model = MODELS.build(deepcopy(model_cfg))
    missing, unexpected = check_model.load_state_dict(state, strict=False)
    dropped = set(model.state_dict()) - set(state)
    if unexpected or sorted(set(missing) - set(dropped)):
        raise RuntimeError(
            f'state_dict does not fit the exported model: missing '
            f'{sorted(set(missing) - set(dropped))}, unexpected {unexpected}'
        )
    check_model.eval()
    with torch.no_grad():
        data = check_model.data_preprocessor(deepcopy(batch), False)
        got = check_model(data['inputs'], mode='tensor')
    diff = _check('state_dict model', got, want, atol)
    meta = dict(
        model=model_cfg,
        dataset_meta=dict(getattr(model, 'dataset_meta', None) or {}),
    )
    torch.save(dict(state_dict=state, meta=_plain(meta)), out)
    return dict(max_abs_diff=diff, num_tensors=len(state))


def _plain(node):
    """Dicts, lists, str, numbers only (what weights_only loading accepts)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    if node is None or isinstance(node, (str, int, float, bool)):
        return node
    return str(node)


def _export_onnx(module, raw, want, out, atol) -> float:
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as error:
        raise ConfigError(
            '--format onnx needs the onnx and onnxruntime packages: '
            'pip install onnx onnxruntime (or glag_mm[export]).'
        ) from error
    tmp = out + '.tmp.onnx'
    torch.onnx.export(
        module,
        (raw,),
        tmp,
        input_names=['inputs'],
        output_names=['logits'],
        dynamic_axes={'inputs': {0: 'batch'}, 'logits': {0: 'batch'}},
        dynamo=False,
    )
    try:
        session = onnxruntime.InferenceSession(
            tmp, providers=['CPUExecutionProvider']
        )
        (got,) = session.run(None, {'inputs': raw.numpy()})
        diff = _check('ONNX model', torch.from_numpy(got), want, atol)
    except BaseException:
        os.remove(tmp)
        raise
    os.replace(tmp, out)
    return diff


def export_classifier(
    model: nn.Module,
    cfg: Config,
    batch: dict,
    out: str,
    fmt: str = 'torchscript',
    linear_head: bool = False,
    atol: float = 1e-5,
) -> dict:
    """Export ``model`` to ``out`` after checking it on ``batch``.

    Returns:
        dict: ``max_abs_diff`` (exported vs PyTorch logits on the batch),
        the batch size, ``input_dtype`` (what the graph takes: the batch's
        pixels' dtype, e.g. ``'uint8'``); ``num_tensors`` for
        ``state_dict``.

    Raises:
        ConfigError: an unknown format, ``linear_head`` with a graph format
            or a conversion that is not exact.
        RuntimeError: the exported model disagrees with the PyTorch model.
    """
    if fmt not in FORMATS:
        raise ConfigError(f'--format must be one of {FORMATS}, got {fmt!r}.')
    if linear_head and fmt != 'state_dict':
        raise ConfigError(
            '--linear-head rewrites a checkpoint for mmpretrain; use it with '
            '--format state_dict (torchscript and onnx hold the whole graph).'
        )
    module = ExportableClassifier(model).eval()
    raw, want, ref = _reference(model, batch)
    with torch.no_grad():
        mine = module(raw)
    _check('the export wrapper', mine, want, atol)
    if ref['scores'] is not None:
        _check(
            'softmax of the exported logits',
            mine.softmax(-1),
            ref['scores'],
            atol,
        )
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    info = dict(
        batch_size=int(raw.shape[0]),
        input_dtype=str(raw.dtype).replace('torch.', ''),
    )
    if fmt == 'state_dict':
        info.update(
            _save_state_dict(model, cfg, out, batch, want, atol, linear_head)
        )
        return info
    if fmt == 'torchscript':
        with torch.no_grad():
            traced = torch.jit.trace(module, (raw,), check_trace=False)
            info['max_abs_diff'] = _check(
                'TorchScript model', traced(raw), want, atol
            )
        traced.save(out)
        return info
    info['max_abs_diff'] = _export_onnx(module, raw, want, out, atol)
    return info
