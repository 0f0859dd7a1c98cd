"""LongTailDataset: exact counts, seeded choice, wrapped pipelines, errors."""

import math
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from mmpretrain.datasets import CustomDataset, FashionMNIST
from mmpretrain.registry import DATASETS
from PIL import Image

from glag_mm.datasets import LongTailDataset, long_tail_counts
from glag_mm.engine import count_dataset_labels

SHARED_DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data'
CIFAR10_JPG = SHARED_DATA / 'cifar10-jpg.tar.xz'

# mmpretrain's IDX reader wraps a read-only buffer (harmless here)
pytestmark = pytest.mark.filterwarnings(
    'ignore:The given NumPy array is not writable'
)

# --------------------------------------------------------------- fixtures


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory) -> Path:
    """CustomDataset tree: 3 classes x 40 images (PNG, JPEG, PNG).

    Pixel (0, 0) of every PNG holds the image's number within its class,
    so a loaded sample can be traced back to its file.
    """
    root = tmp_path_factory.mktemp('folders')
    for cls, ext in enumerate(['png', 'jpg', 'png']):
        folder = root / 'train' / f'class_{cls}'
        folder.mkdir(parents=True)
        for i in range(40):
            pixels = np.full((6, 6, 3), 10 * cls, dtype=np.uint8)
            pixels[0, 0] = i
            Image.fromarray(pixels).save(folder / f'{i:03d}.{ext}')
    return root


def folder_cfg(root: Path, **kwargs) -> dict:
    return dict(
        type='CustomDataset',
        data_root=str(root),
        data_prefix='train',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')],
        **kwargs,
    )


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An un-gzipped IDX file (magic 0x08 = ubyte, then the dimensions)."""
    header = struct.pack('>I', 0x0800 + array.ndim)
    header += struct.pack('>' + 'I' * array.ndim, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope='module')
def fashion_root(tmp_path_factory) -> Path:
    """A fake Fashion-MNIST: 10 classes x 30 train images, 20 test images.

    Train image k has pixel (0, 0) = k // 256 and (0, 1) = k % 256 and its
    label is k % 10, so every sample is identifiable.
    """
    root = tmp_path_factory.mktemp('fashion')
    num = 300
    images = np.zeros((num, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(num) // 256
    images[:, 0, 1] = np.arange(num) % 256
    _write_idx(root / 'train-images-idx3-ubyte', images)
    _write_idx(root / 'train-labels-idx1-ubyte', np.arange(num) % 10)
    _write_idx(root / 't10k-images-idx3-ubyte', images[:20])
    _write_idx(root / 't10k-labels-idx1-ubyte', np.arange(20) % 10)
    return root


def fashion_cfg(root: Path) -> dict:
    return dict(
        type='FashionMNIST',
        data_root=str(root),
        split='train',
        download=False,
        pipeline=[dict(type='PackInputs')],
    )


def kept_indices(ds: LongTailDataset) -> list:
    return [ds.get_ori_index(i) for i in range(len(ds))]


def image_number(sample_img: np.ndarray) -> int:
    return int(sample_img[0, 0]) * 256 + int(sample_img[0, 1])


# ------------------------------------------------------ the count profiles


def test_exp_profile_cifar10_if100():
    counts = long_tail_counts(10, 5000, 100)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(counts) == 12406
    assert sum(long_tail_counts(10, 5000, 10)) == 20431


def test_exp_profile_matches_formula_and_fashion_mnist():
    assert sum(long_tail_counts(10, 6000, 100, 'exp')) == 14886
    assert sum(long_tail_counts(100, 500, 100)) == 10847  # CIFAR-100-LT
    for num, n_max, imb in [(10, 5000, 50), (100, 500, 200), (7, 80, 3.5)]:
        direct = [
            math.floor(n_max * imb ** (-i / (num - 1))) for i in range(num)
        ]
        assert long_tail_counts(num, n_max, imb) == direct
    assert long_tail_counts(4, 9, 1) == [9, 9, 9, 9]
    assert long_tail_counts(1, 9, 100) == [9]


def test_step_profile():
    assert long_tail_counts(10, 5000, 10, 'step') == [5000] * 5 + [500] * 5
    # odd C: the extra class is a majority one
    assert long_tail_counts(5, 100, 3, 'step') == [100] * 3 + [33] * 2


@pytest.mark.parametrize('bad', [0.5, 0, -3, float('nan'), 'ten', True])
def test_imbalance_factor_below_one_is_refused(bad):
    with pytest.raises(ValueError, match='imbalance_factor'):
        long_tail_counts(10, 5000, bad)


def test_profile_errors():
    with pytest.raises(ValueError, match='unknown long-tail profile'):
        long_tail_counts(10, 5000, 10, 'linear')
    with pytest.raises(ValueError, match='no image'):
        long_tail_counts(10, 50, 100)  # floor(50 / 100) = 0
    with pytest.raises(ValueError, match='no image'):
        long_tail_counts(4, 5, 10, 'step')


# ------------------------------------------------- CustomDataset folders


def test_folder_counts_labels_and_pipeline(image_folder):
    ds = DATASETS.build(
        dict(
            type='LongTailDataset',
            dataset=folder_cfg(image_folder),
            imbalance_factor=4,
            seed=3,
        )
    )
    assert len(ds) == 40 + 20 + 10
    meta = ds.metainfo
    assert meta['class_counts'] == [40, 20, 10]
    assert meta['imbalance_factor'] == 4.0
    assert meta['classes'] == ('class_0', 'class_1', 'class_2')
    labels = ds.get_gt_labels()
    assert np.bincount(labels).tolist() == [40, 20, 10]
    assert count_dataset_labels(ds) == [40, 20, 10]
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert f'class_{labels[i]}' in info['img_path']
        assert ds.get_cat_ids(i) == [labels[i]]
    # a sample goes through the wrapped pipeline and is the listed file
    sample = ds[len(ds) - 1]
    assert tuple(sample['inputs'].shape) == (3, 6, 6)
    assert sample['data_samples'].gt_label.tolist() == [2]
    number = int(Path(ds.get_data_info(len(ds) - 1)['img_path']).stem)
    assert int(sample['inputs'][0, 0, 0]) == number


def test_folder_is_deterministic_and_seeded(image_folder):
    def build(seed, imb=4):
        return LongTailDataset(
            folder_cfg(image_folder), imbalance_factor=imb, seed=seed
        )

    def paths(ds):
        return [ds.get_data_info(i)['img_path'] for i in range(len(ds))]

    first, again = build(0), build(0)
    assert paths(first) == paths(again)
    other = build(1)
    assert other.metainfo['class_counts'] == [40, 20, 10]
    assert paths(other) != paths(first)
    # a larger imbalance factor keeps a subset of the same seed's images
    tighter = build(0, imb=8)
    assert tighter.metainfo['class_counts'] == [40, 14, 5]
    assert set(paths(tighter)) <= set(paths(first))


def test_folder_class_order_and_max_count(image_folder):
    ds = LongTailDataset(
        folder_cfg(image_folder),
        imbalance_factor=4,
        class_order=[2, 0, 1],
        max_count=36,
    )
    # ranks: class 2 -> 36, class 0 -> floor(36 / 2) = 18, class 1 -> 9
    assert ds.metainfo['class_counts'] == [18, 9, 36]
    assert np.bincount(ds.get_gt_labels()).tolist() == [18, 9, 36]


def test_wrapper_argument_errors(image_folder):
    cfg = folder_cfg(image_folder)
    with pytest.raises(ValueError, match='imbalance_factor'):
        LongTailDataset(cfg, imbalance_factor=0.9)
    with pytest.raises(ValueError, match='unknown long-tail profile'):
        LongTailDataset(cfg, imbalance_factor=10, profile='pareto')
    with pytest.raises(ValueError, match='no image'):
        LongTailDataset(cfg, imbalance_factor=50)  # floor(40 / 50) = 0
    with pytest.raises(ValueError, match='seed'):
        LongTailDataset(cfg, imbalance_factor=2, seed=None)
    with pytest.raises(ValueError, match='seed'):
        LongTailDataset(cfg, imbalance_factor=2, seed=-1)
    with pytest.raises(ValueError, match='class_order'):
        LongTailDataset(cfg, imbalance_factor=2, class_order=[0, 1, 1])
    with pytest.raises(TypeError, match='config dict or a dataset'):
        LongTailDataset(42, imbalance_factor=2)


def test_shortage_is_an_error_unless_allowed(image_folder):
    cfg = folder_cfg(image_folder)
    with pytest.raises(ValueError, match='too few images.*max_count'):
        LongTailDataset(cfg, imbalance_factor=2, max_count=50)
    ds = LongTailDataset(
        cfg, imbalance_factor=2, max_count=50, allow_shortage=True
    )
    # targets [50, 35, 25] capped by the 40 images each class has
    assert ds.metainfo['class_counts'] == [40, 35, 25]


def test_wrapped_class_without_images_is_an_error(image_folder, tmp_path):
    ann = tmp_path / 'ann.txt'
    ann.write_text('class_0/000.png 0\nclass_0/001.png 0\nclass_1/000.jpg 1\n')
    base = CustomDataset(
        data_root=str(image_folder),
        data_prefix='train',
        ann_file=str(ann),
        metainfo=dict(classes=('a', 'b', 'c')),
    )
    with pytest.raises(ValueError, match=r'class\(es\) \[2\].*no image'):
        LongTailDataset(base, imbalance_factor=2)


def test_lazy_init(image_folder):
    ds = LongTailDataset(folder_cfg(image_folder), 4, lazy_init=True)
    assert 'class_counts' not in ds.metainfo
    assert ds.metainfo['classes'] == ('class_0', 'class_1', 'class_2')
    assert len(ds) == 70  # triggers full_init
    assert ds.metainfo['class_counts'] == [40, 20, 10]


# -------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_counts_and_samples(fashion_root):
    ds = DATASETS.build(
        dict(
            type='LongTailDataset',
            dataset=fashion_cfg(fashion_root),
            imbalance_factor=10,
            seed=0,
        )
    )
    expected = [30, 23, 17, 13, 10, 8, 6, 5, 3, 3]
    assert expected == [int(30 * 10 ** (-i / 9)) for i in range(10)]
    assert ds.metainfo['class_counts'] == expected
    assert len(ds) == 118
    assert ds.metainfo['classes'][0] == 'T-shirt/top'
    # the wrapper built the dataset, so it shrank it to the kept images
    assert len(ds.dataset) == 118
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert image_number(info['img']) % 10 == int(info['gt_label'])
    sample = ds[5]
    assert tuple(sample['inputs'].shape) == (1, 28, 28)
    assert sample['data_samples'].gt_label.item() == ds.get_gt_labels()[5]


def test_fashion_mnist_instance_is_left_intact(fashion_root):
    cfg = fashion_cfg(fashion_root)
    cfg.pop('type')
    full = FashionMNIST(**cfg)
    ds = LongTailDataset(full, imbalance_factor=10, seed=0)
    assert len(full) == 300  # not modified
    built = LongTailDataset(fashion_cfg(fashion_root), 10, seed=0)

    def numbers(d):
        return [image_number(d.get_data_info(i)['img']) for i in range(len(d))]

    # same seed: the same images whether wrapped or built
    assert numbers(ds) == numbers(built)
    assert kept_indices(ds) == numbers(ds)
    other = LongTailDataset(full, imbalance_factor=10, seed=1)
    assert other.metainfo['class_counts'] == ds.metainfo['class_counts']
    assert numbers(other) != numbers(ds)
    # class 0 keeps all its 30 images whatever the seed
    assert {n for n in numbers(other) if n % 10 == 0} == set(range(0, 300, 10))
    assert sorted(numbers(other)) == numbers(other)  # dataset order


def test_step_profile_on_fashion_mnist(fashion_root):
    ds = LongTailDataset(
        fashion_cfg(fashion_root), imbalance_factor=10, profile='step'
    )
    assert ds.metainfo['class_counts'] == [30] * 5 + [3] * 5
    assert ds.metainfo['profile'] == 'step'


# ------------------------------------------------------- real CIFAR-10


@pytest.mark.slow
def test_real_cifar10_if100(tmp_path):
    """The real CIFAR-10 train listing gives the published CIFAR-10-LT.

    The archive is read twice as a stream: once for the 50,000 train file
    names (the labels are the sorted folder names, CIFAR-10's order), then
    to write out only the kept images of the rarest class, which are loaded
    through the pipeline. Nothing else is extracted.
    """
    if not CIFAR10_JPG.is_file():
        pytest.skip(f'{CIFAR10_JPG.name} is absent (development data only)')
    with tarfile.open(CIFAR10_JPG, 'r|xz') as tar:
        names = sorted(
            m.name[len('train/') :]
            for m in tar
            if m.isfile() and m.name.startswith('train/')
        )
    classes = sorted({name.split('/')[0] for name in names})
    assert len(names) == 50000 and len(classes) == 10
    label_of = {c: i for i, c in enumerate(classes)}
    ann = tmp_path / 'train.txt'
    ann.write_text(
        ''.join(f'{n} {label_of[n.split("/")[0]]}\n' for n in names)
    )
    cfg = folder_cfg(tmp_path, ann_file=str(ann))
    cfg['metainfo'] = dict(classes=tuple(classes))
    ds = LongTailDataset(cfg, imbalance_factor=100, seed=0)
    assert ds.metainfo['class_counts'] == [
        5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50
    ]  # fmt: skip
    assert len(ds) == 12406
    labels = ds.get_gt_labels()
    tail = [i for i in range(len(ds)) if labels[i] == 9]
    wanted = {
        Path(ds.get_data_info(i)['img_path']).relative_to(tmp_path).as_posix()
        for i in tail
    }
    assert len(wanted) == 50 and all(
        w.startswith('train/truck/') for w in wanted
    )
    with tarfile.open(CIFAR10_JPG, 'r|xz') as tar:
        for member in tar:
            if member.name in wanted:
                target = tmp_path / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    for i in tail:
        sample = ds[i]
        assert tuple(sample['inputs'].shape) == (3, 32, 32)
        assert sample['data_samples'].gt_label.item() == 9


# ------------------------------------------------------- held-out split


def test_heldout_split_is_disjoint_from_the_training_subset(fashion_root):
    kwargs = dict(dataset=fashion_cfg(fashion_root), imbalance_factor=10)
    train = LongTailDataset(**kwargs)
    heldout = LongTailDataset(split='heldout', heldout_per_class=4, **kwargs)
    train_counts = train.metainfo['class_counts']
    # each class has 30 images: a share of min(4, 30 - n_c) is left over
    expected = [min(4, 30 - n) for n in train_counts]
    assert heldout.metainfo['class_counts'] == expected
    assert heldout.metainfo['train_class_counts'] == train_counts
    assert np.bincount(heldout.get_gt_labels(), minlength=10).tolist() == (
        expected
    )
    train_images = {image_number(s['inputs'][0].numpy()) for s in train}
    held_images = {image_number(s['inputs'][0].numpy()) for s in heldout}
    assert len(held_images) == sum(expected)
    assert not train_images & held_images
    # the held-out share is the next images of the same seeded order
    again = LongTailDataset(split='heldout', heldout_per_class=4, **kwargs)
    assert kept_indices(again) == kept_indices(heldout)


def test_heldout_errors(fashion_root):
    with pytest.raises(ValueError, match='unknown split'):
        LongTailDataset(fashion_cfg(fashion_root), 10, split='val')
    with pytest.raises(ValueError, match='heldout_per_class must be'):
        LongTailDataset(fashion_cfg(fashion_root), 10, heldout_per_class=0)
