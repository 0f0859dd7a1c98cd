"""tools/export.py: TorchScript, ONNX and deployable checkpoints.

A tiny two-stage run (the tools' Fashion-MNIST-shaped data, long-tailed;
stage two an ``AFGHead`` with Tukey lambda 0.5 and its statistics pass) is
exported; every exported model must give the PyTorch model's logits.
"""

import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from test_tools import STAGE1, TOOLS, run_tool, write_fashion_mnist

from glag_tools import ConfigError, run_stages
from glag_tools.export import (
    build_classifier,
    deploy_state_dict,
    export_classifier,
    load_export_config,
    sample_batch,
)

COUNTS = [16, 12, 10, 8, 6, 5, 4, 4, 3, 3]

STAGE2_AFG = """
_base_ = ['./stage1.py']
model = dict(
    backbone=dict(
        frozen_stages=1, norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='{stage_one_checkpoint}',
                      prefix='backbone')),
    head=dict(type='AFGHead', tukey_lambda=0.5, tail_threshold=0.5,
              num_donors=2))
custom_hooks = [dict(type='AFGHook', progress=False)]
val_evaluator = dict(_delete_=True, type='LongTailAccuracy')
train_cfg = dict(_delete_=True, type='ValidateBeforeSaveLoop', max_epochs=1)
"""

TWO_STAGE = """
stages = [
    dict(name='stage1', config='stage1.py'),
    dict(name='stage2', config='stage2.py', init_from='stage1'),
]
"""


@pytest.fixture(scope='module')
def glag_run(tmp_path_factory):
    """Both stages once: stage one CE, stage two AFGHead (lambda 0.5)."""
    root = tmp_path_factory.mktemp('export')
    data_root = write_fashion_mnist(root / 'fashion', COUNTS)
    (root / 'stage1.py').write_text(
        STAGE1.format(data_root=data_root, epochs=1)
    )
    (root / 'stage2.py').write_text(STAGE2_AFG)
    (root / 'two_stage.py').write_text(TWO_STAGE)
    checkpoints = run_stages(
        str(root / 'two_stage.py'), work_dir=str(root / 'work')
    )
    return root, checkpoints['stage2']


def _model(root, checkpoint, **options):
    cfg, _ = load_export_config(str(root / 'two_stage.py'))
    if options:
        cfg.merge_from_dict(options)
    return cfg, build_classifier(cfg, checkpoint)


def _runner_model(cfg, checkpoint, work_dir):
    """The model a Runner builds from ``cfg``, with the checkpoint."""
    from mmengine.runner import Runner, load_checkpoint

    cfg = cfg.copy()
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'export_check_{os.urandom(3).hex()}'
    model = Runner.from_cfg(cfg).model
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    return model.eval()


def _logits(model, batch):
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        return model(data['inputs'], mode='tensor')


@pytest.mark.slow
def test_torchscript_round_trip(glag_run, tmp_path):
    root, ckpt = glag_run
    out = tmp_path / 'model.pt'
    result = run_tool(
        TOOLS / 'export.py',
        root / 'two_stage.py',
        ckpt,
        '--format',
        'torchscript',
        '--out',
        out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'wrote' in result.stdout
    assert 'it takes uint8 pixels (N, C, H, W)' in result.stdout
    cfg, model = _model(root, ckpt)
    assert model.head.tukey_lambda == 0.5
    assert model.head.statistics is None  # checkpoints hold no statistics
    batch = sample_batch(cfg, 8)
    raw = torch.stack(batch['inputs'])  # uint8, as the pipeline delivers
    assert raw.dtype == torch.uint8
    loaded = torch.jit.load(str(out))
    got = loaded(raw)
    torch.testing.assert_close(loaded(raw.float()), got, rtol=0, atol=0)
    torch.testing.assert_close(got, _logits(model, batch), rtol=0, atol=1e-5)
    # the model mmengine's Runner builds (what tools/test.py tests), with
    # the config's top-level data_preprocessor: (x - 127.5) / 127.5
    tested = _runner_model(cfg, ckpt, tmp_path / 'runner')
    assert tested.data_preprocessor.mean.flatten().tolist() == [127.5]
    torch.testing.assert_close(got, _logits(tested, batch), rtol=0, atol=1e-5)
    # the graph holds Tukey's transform: without it the logits differ
    with torch.no_grad():
        feats = model.extract_feat(model.data_preprocessor(batch)['inputs'])
        plain = model.head.fc(feats[-1])
    assert (got - plain).abs().max() > 1e-3


@pytest.mark.slow
def test_onnx_round_trip(glag_run, tmp_path):
    pytest.importorskip('onnx', reason='the optional onnx package is absent')
    ort = pytest.importorskip(
        'onnxruntime', reason='the optional onnxruntime package is absent'
    )
    root, ckpt = glag_run
    cfg, model = _model(root, ckpt)
    batch = sample_batch(cfg, 6)
    out = str(tmp_path / 'model.onnx')
    info = export_classifier(model, cfg, batch, out, fmt='onnx')
    assert info['batch_size'] == 6 and info['max_abs_diff'] <= 1e-5
    assert info['input_dtype'] == 'uint8'
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    assert session.get_inputs()[0].type == 'tensor(uint8)'
    # another batch size than the one exported with (dynamic batch axis),
    # fed exactly what the test pipeline delivers: uint8 pixels
    other = sample_batch(cfg, 10)
    raw = torch.stack(other['inputs']).numpy()
    assert raw.dtype == np.uint8
    (got,) = session.run(None, {'inputs': raw})
    np.testing.assert_allclose(
        got, _logits(model, other).numpy(), rtol=0, atol=1e-5
    )


@pytest.mark.slow
def test_state_dict_is_tensors_only_without_statistics(glag_run, tmp_path):
    root, ckpt = glag_run
    full = torch.load(ckpt, map_location='cpu', weights_only=False)
    full_keys = set(full['state_dict'])
    assert 'head.confidence' in full_keys
    out = tmp_path / 'deploy.pth'
    result = run_tool(
        TOOLS / 'export.py',
        root / 'two_stage.py',
        ckpt,
        '--format',
        'state_dict',
        '--out',
        out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(out, map_location='cpu', weights_only=True)
    keys = set(saved['state_dict'])
    dropped = full_keys - keys
    assert keys < full_keys
    assert dropped == {
        'head.confidence',
        'head.prev_class_acc',
        'head.num_confidence_updates',
        'head.last_update_iter',
    }, sorted(dropped)
    assert {'head.fc.weight', 'head.fc.bias', 'backbone.conv1.weight'} <= keys
    for key in keys:
        assert torch.equal(saved['state_dict'][key], full['state_dict'][key])
    assert saved['meta']['model']['head']['tukey_lambda'] == 0.5
    # a model built from the saved config and tensors predicts the same
    cfg, model = _model(root, ckpt)
    from mmpretrain.registry import MODELS

    rebuilt = MODELS.build(saved['meta']['model']).eval()
    rebuilt.load_state_dict(saved['state_dict'], strict=False)
    batch = sample_batch(cfg, 8)
    torch.testing.assert_close(
        _logits(rebuilt, batch), _logits(model, batch), rtol=0, atol=0
    )


@pytest.mark.slow
def test_linear_head_refused_unless_exact(glag_run, tmp_path):
    root, ckpt = glag_run
    out = tmp_path / 'linear.pth'
    result = run_tool(
        TOOLS / 'export.py',
        root / 'two_stage.py',
        ckpt,
        '--format',
        'state_dict',
        '--linear-head',
        '--out',
        out,
    )
    assert result.returncode != 0
    assert 'x ** 0.5' in result.stderr
    assert 'exact only for tukey_lambda=1' in result.stderr
    assert not out.exists()
    cfg, model = _model(root, ckpt)
    with pytest.raises(ConfigError, match='use it with\n?.*state_dict'):
        export_classifier(
            model, cfg, sample_batch(cfg, 4), str(out), 'onnx', True
        )
    # at lambda = 1 the conversion is exact and written
    cfg, model = _model(root, ckpt, **{'model.head.tukey_lambda': 1.0})
    batch = sample_batch(cfg, 8)
    info = export_classifier(
        model, cfg, batch, str(out), 'state_dict', linear_head=True
    )
    assert info['max_abs_diff'] <= 1e-5
    saved = torch.load(out, map_location='cpu', weights_only=True)
    assert saved['meta']['model']['head']['type'] == 'LinearClsHead'
    from mmpretrain.registry import MODELS

    linear = MODELS.build(saved['meta']['model']).eval()
    linear.load_state_dict(saved['state_dict'])  # strict: nothing left over
    torch.testing.assert_close(
        _logits(linear, batch), _logits(model, batch), rtol=0, atol=1e-6
    )


def test_deploy_state_dict_keeps_plain_models(tmp_path):
    data_root = write_fashion_mnist(tmp_path / 'fashion', [3] * 10)
    path = tmp_path / 'stage1.py'
    path.write_text(STAGE1.format(data_root=data_root, epochs=1))
    cfg = Config.fromfile(str(path))
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    state = deploy_state_dict(model)
    assert set(state) == set(model.state_dict())
