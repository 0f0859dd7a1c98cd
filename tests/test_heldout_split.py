"""PerClassSplit: a seeded per-class held-out split of any dataset.

On a tiny folder tree that is already long-tailed (CustomDataset), and a
two-stage run of the own-data recipe (configs/custom/) that validates on
the held-out part.
"""

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS

from glag_mm.datasets import PerClassSplit, heldout_counts
from glag_tools import read_stage_done, run_stages

REPO = Path(__file__).resolve().parents[1]
COUNTS = [20, 12, 7, 4, 2]


def write_tree(root: Path, counts=COUNTS, test_per_class=2) -> str:
    """train/<class>/*.png (``counts`` images) and test/<class>/*.png."""
    rng = np.random.default_rng(0)
    for split, per_class in (('train', counts), ('test', None)):
        for c, n in enumerate(per_class or [test_per_class] * len(counts)):
            folder = root / split / f'class_{c}'
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                image = rng.integers(0, 50, (32, 32, 3)).astype(np.uint8)
                image[4 * c : 4 * c + 6] = 240  # a bar per class
                cv2.imwrite(str(folder / f'{j}.png'), image)
    return str(root)


def _split(root, split, **kwargs):
    init_default_scope('mmpretrain')
    args = dict(fraction=0.25, min_per_class=2, seed=0)
    args.update(kwargs)
    return DATASETS.build(
        dict(
            type='PerClassSplit',
            split=split,
            dataset=dict(
                type='CustomDataset',
                data_root=root,
                data_prefix='train',
                pipeline=[],
            ),
            **args,
        )
    )


def _paths(dataset):
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


def test_heldout_counts_formula():
    # h_c = min(max(floor(f n_c), min), max, n_c - min_train), >= 0
    assert heldout_counts([20, 12, 7, 4, 2, 1], 0.25, 2) == [5, 3, 2, 2, 1, 0]
    assert heldout_counts([200, 10], 0.1, 1, max_per_class=5) == [5, 1]
    assert heldout_counts([10, 3], 0.5, 0, min_train_per_class=2) == [5, 1]


def test_split_of_a_long_tailed_folder_tree(tmp_path):
    root = write_tree(tmp_path / 'tree')
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        train = _split(root, 'train')
        held = _split(root, 'heldout')
    finally:
        logger.removeHandler(handler)
    expected_held = [5, 3, 2, 2, 1]  # the last class keeps one to train on
    expected_train = [n - h for n, h in zip(COUNTS, expected_held)]
    assert np.bincount(held.get_gt_labels()).tolist() == expected_held
    assert np.bincount(train.get_gt_labels()).tolist() == expected_train
    assert held.metainfo['class_counts'] == expected_held
    assert held.metainfo['train_class_counts'] == expected_train
    assert train.metainfo['class_counts'] == expected_train
    assert train.metainfo['classes'] == tuple(f'class_{c}' for c in range(5))
    # disjoint, and together the whole tree
    train_paths, held_paths = set(_paths(train)), set(_paths(held))
    assert not train_paths & held_paths
    assert len(train_paths | held_paths) == sum(COUNTS)
    # labels follow the images
    for i in range(len(held)):
        info = held.get_data_info(i)
        assert (
            Path(info['img_path']).parent.name == f'class_{info["gt_label"]}'
        )
    # the class that could not spare min_per_class images is named
    warned = [
        r.getMessage() for r in records if 'fewer than' in r.getMessage()
    ]
    assert warned and 'class 4: 2 images, 1 held out' in warned[0]
    # seeded: the same seed the same images, another seed others
    assert _paths(_split(root, 'heldout')) == _paths(held)
    # an instance passed in is indexed, not shrunk
    tree = DATASETS.build(
        dict(type='CustomDataset', data_root=root, data_prefix='train')
    )
    wrapped = PerClassSplit(tree, 'heldout', fraction=0.25, min_per_class=2)
    assert _paths(wrapped) == _paths(held) and len(tree) == sum(COUNTS)
    other = set(_paths(_split(root, 'heldout', seed=1)))
    assert other != held_paths
    assert len(other) == len(held_paths)


def test_split_arguments_checked(tmp_path):
    root = write_tree(tmp_path / 'tree', counts=[3, 2], test_per_class=1)
    with pytest.raises(
        ValueError, match="choose one of \\('train', 'heldout'"
    ):
        _split(root, 'val')
    with pytest.raises(ValueError, match='fraction must be in'):
        _split(root, 'train', fraction=1.0)
    with pytest.raises(ValueError, match='min_per_class must be an integer'):
        _split(root, 'train', min_per_class=-1)


SMALL = 'dict(stem_channels=8, base_channels=8)'
STAGE = """
_base_ = [{base!r}]
model = dict(
    backbone={backbone},
    head=dict(num_classes=5, in_channels=64{head}))
data_preprocessor = dict(num_classes=5)
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(fraction=0.25, dataset=dict(data_root={root!r})))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(fraction=0.25, dataset=dict(data_root={root!r})))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}))
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = dict(T_max=1, end=1)
default_hooks = dict(logger=dict(interval=1))
"""


@pytest.mark.slow
def test_two_stage_run_on_the_held_out_split(tmp_path):
    root = write_tree(tmp_path / 'tree')
    custom = REPO / 'configs' / 'custom'
    (tmp_path / 'stage1.py').write_text(
        STAGE.format(
            base=str(custom / 'graloss_r18_folder.py'),
            root=root,
            head=', loss=dict(num_classes=5)',
            backbone=SMALL,
        )
    )
    (tmp_path / 'stage2.py').write_text(
        STAGE.format(
            base=str(custom / 'afg_r18_folder.py'),
            root=root,
            head=', tail_threshold=0.3',
            backbone=SMALL,  # the stage-one dict: StageTwoClassifier wraps it
        )
        + "custom_hooks = [dict(type='AFGHook', progress=False),"
        " dict(type='GLAGDistillHook', checkpoint='{stage_one_checkpoint}')]"
    )
    (tmp_path / 'glag.py').write_text(
        (custom / 'glag_r18_folder.py')
        .read_text()
        .replace('graloss_r18_folder.py', 'stage1.py')
        .replace('afg_r18_folder.py', 'stage2.py')
    )
    work_dir = tmp_path / 'work'
    run_stages(str(tmp_path / 'glag.py'), work_dir=str(work_dir))
    for stage in ('stage1', 'stage2'):
        assert read_stage_done(str(work_dir / stage))['epoch'] == 1
        log = next((work_dir / stage).glob('*/*.log')).read_text()
        # trained on the training part, validated on the held-out part
        assert 'PerClassSplit (train): 32 of 45 images' in log
        assert 'PerClassSplit (heldout): 13 of 45 images' in log
        assert 'class counts: 5 classes, 32 images, max 15, min 1' in log
        assert 'Epoch(val) [1]' in log
    log2 = next((work_dir / 'stage2').glob('*/*.log')).read_text()
    assert 'AFGHook: statistics of 32 training features' in log2
