"""The own-data recipes (configs/custom/) inherited from a user's file.

A user's config anywhere inherits a recipe by its absolute path and points
it at their data by the keys configs/custom/_base_/folder_lt.py documents;
the project is never edited. The recipe's own data_root ('data/my_dataset')
does not exist in the working directory, so only the overrides can reach
the data.
"""

from pathlib import Path

import pytest
from mmengine.config import Config
from test_heldout_split import write_tree
from test_tools import run_tool

REPO = Path(__file__).resolve().parents[1]
CUSTOM = REPO / 'configs' / 'custom'

# the keys configs/custom/_base_/folder_lt.py documents, as written there
USER = """
_base_ = [{base!r}]
data_root = {root!r}
num_classes = 5
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
test_dataloader = dict(dataset=dict(data_root=data_root))
data_preprocessor = dict(num_classes=num_classes)
model = dict(head=dict(num_classes=num_classes{loss}))
"""


def _user_config(tmp_path, recipe, root, name='mine.py'):
    loss = ', loss=dict(num_classes=num_classes)'
    text = USER.format(
        base=str(CUSTOM / recipe),
        root=root,
        loss='' if recipe.startswith('afg') else loss,
    )
    path = tmp_path / 'user' / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _roots(cfg):
    train = cfg.train_dataloader.dataset.dataset
    val = cfg.val_dataloader.dataset.dataset
    return [
        train.data_root,
        val.data_root,
        cfg.test_dataloader.dataset.data_root,
    ]


@pytest.mark.parametrize(
    'recipe',
    [
        'graloss_r18_folder.py',
        'afg_r18_folder.py',
        'graloss_r20_folder_32px.py',
        'afg_r20_folder_32px.py',
    ],
)
def test_documented_overrides_reach_every_loader(tmp_path, recipe):
    cfg = Config.fromfile(str(_user_config(tmp_path, recipe, '/my/data')))
    assert _roots(cfg) == ['/my/data'] * 3
    assert cfg.model.head.num_classes == 5
    if recipe.startswith('graloss'):
        assert cfg.model.head.loss.num_classes == 5
    # the recipe's own data_root alone (the pitfall the docs warn of)
    plain = Config.fromfile(str(CUSTOM / recipe))
    assert _roots(plain) == ['data/my_dataset'] * 3


def test_small_image_recipe_sizes():
    """32-pixel pipelines and a CIFAR ResNet-20 for small images."""
    cfg = Config.fromfile(str(CUSTOM / 'graloss_r20_folder_32px.py'))
    assert cfg.model.backbone.type == 'CifarResNet'
    assert cfg.model.backbone.depth == 20
    train = cfg.train_dataloader.dataset.dataset.pipeline
    test = cfg.test_dataloader.dataset.pipeline
    assert [t['type'] for t in train][1:3] == ['Resize', 'RandomCrop']
    assert train[1]['scale'] == (32, 32) and train[2]['crop_size'] == 32
    assert test[1] == dict(type='Resize', scale=(32, 32))
    stage_two = Config.fromfile(str(CUSTOM / 'afg_r20_folder_32px.py'))
    # stage two trains on the frozen trunk without augmentation
    assert stage_two.train_dataloader.dataset.dataset.pipeline == test
    # on stage one's ResNet-20, frozen whole
    assert stage_two.model.type == 'StageTwoClassifier'
    assert stage_two.model.backbone == cfg.model.backbone


@pytest.mark.slow
def test_user_config_trains_on_a_folder_tree(tmp_path):
    """A user's file inheriting the small-image recipe by path trains a
    couple of iterations on a tiny ImageFolder tree, validates on the
    held-out part of it and tests on its test folder."""
    root = write_tree(tmp_path / 'tree')
    config = _user_config(tmp_path, 'graloss_r20_folder_32px.py', root)
    with open(config, 'a') as f:
        f.write(
            'train_dataloader.update(batch_size=16, num_workers=0,'
            ' persistent_workers=False)\n'
            'val_dataloader.update(num_workers=0, persistent_workers=False)\n'
            'test_dataloader.update(num_workers=0, persistent_workers=False)\n'
            'train_cfg = dict(max_epochs=1, val_interval=1)\n'
            'param_scheduler = dict(T_max=1, end=1)\n'
            'default_hooks = dict(logger=dict(interval=1))\n'
        )
    work = tmp_path / 'work'
    done = run_tool(
        REPO / 'tools' / 'train.py', config, '--work-dir', work,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    log = next(work.glob('*/*.log')).read_text()
    # at least 2 held out per class (1 where a class has 2), 1 kept
    assert 'PerClassSplit (train): 36 of 45 images' in log
    assert 'class counts: 5 classes, 36 images, max 18, min 1' in log
    assert 'Epoch(train) [1][3/3]' in log  # 36 images, batch 16
    assert 'Epoch(val) [1]' in log
    assert (work / 'epoch_1.pth').is_file()
