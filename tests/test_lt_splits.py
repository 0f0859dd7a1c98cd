"""ImageNet-LT / Places-LT / iNaturalist 2018 readers on the real splits."""

import json
from pathlib import Path

import numpy as np
import pytest
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from mmpretrain.registry import DATASETS
from PIL import Image

from glag_mm.datasets import (
    ImageNetLT,
    INaturalist2018,
    LongTailListDataset,
    PlacesLT,
    long_tail_counts,
)
from glag_mm.engine import count_dataset_labels

SPLITS = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'lt-splits'


@pytest.fixture(scope='module')
def splits() -> Path:
    if not SPLITS.is_dir():
        pytest.skip(
            '../shared/data/lt-splits is absent (development data only); '
            'these tests need the published split files'
        )
    return SPLITS


def shot_groups(counts, many=100, few=20):
    """(many, medium, few) class numbers: > 100, 20..100, < 20 images."""
    counts = np.asarray(counts)
    return (
        int((counts > many).sum()),
        int(((counts >= few) & (counts <= many)).sum()),
        int((counts < few).sum()),
    )


# ------------------------------------------------------ real split files


def test_imagenet_lt_test_split(splits):
    # the images are not there: nothing but the list file may be opened
    ds = DATASETS.build(
        dict(
            type='ImageNetLT',
            ann_file=str(splits / 'ImageNet_LT_test.txt'),
            data_root='/nonexistent/imagenet',
        )
    )
    assert len(ds) == 50000
    assert ds.metainfo['class_counts'] == [50] * 1000
    assert ds.metainfo['classes'] == tuple(IMAGENET_CATEGORIES)
    first = ds.get_data_info(0)
    assert first['img_path'] == (
        '/nonexistent/imagenet/val/n01440764/ILSVRC2012_val_00029930.JPEG'
    )
    assert first['gt_label'] == 0
    assert ds.get_gt_labels()[-1] == 999
    assert count_dataset_labels(ds) == [50] * 1000


def test_imagenet_lt_val_split(splits):
    ds = ImageNetLT(ann_file=str(splits / 'ImageNet_LT_val.txt'))
    assert len(ds) == 20000
    assert ds.metainfo['class_counts'] == [20] * 1000


def test_places_lt_train_matches_published_counts(splits):
    ds = PlacesLT(
        ann_file='Places_LT_train.txt', data_root=str(splits), data_prefix=''
    )
    published = json.loads((splits / 'Places_LT.json').read_text())
    assert len(ds) == 62500
    assert len(ds.metainfo['classes']) == 365
    assert ds.metainfo['classes'][:2] == ('airfield', 'airplane_cabin')
    assert ds.metainfo['classes'][-1] == 'zen_garden'
    counts = ds.metainfo['class_counts']
    assert counts == published
    assert np.bincount(ds.get_gt_labels()).tolist() == published
    assert (max(counts), min(counts)) == (4980, 5)
    assert shot_groups(counts) == (131, 163, 71)


def test_places_lt_val_and_test(splits):
    val = PlacesLT(ann_file=str(splits / 'Places_LT_val.txt'))
    test = PlacesLT(ann_file=str(splits / 'Places_LT_test.txt'))
    assert val.metainfo['class_counts'] == [20] * 365
    assert test.metainfo['class_counts'] == [100] * 365


def test_inaturalist_val_list(splits):
    ds = INaturalist2018(ann_file=str(splits / 'iNaturalist18_val.txt'))
    assert len(ds) == 24426
    assert ds.metainfo['class_counts'] == [3] * 8142
    assert ds.metainfo['classes'][:3] == ('0', '1', '2')
    assert ds.get_data_info(0)['gt_label'] == 7291


@pytest.mark.parametrize(
    'name, classes, images, groups',
    [
        ('ImageNet_LT.json', 1000, 115846, (385, 479, 136)),
        ('Places_LT.json', 365, 62500, (131, 163, 71)),
        ('iNaturalist18.json', 8142, 437513, (842, 4076, 3224)),
        ('CIFAR-100-LT_IMBA100.json', 100, 10847, (35, 35, 30)),
        ('CIFAR-10-LT_IMBA100.json', 10, 12406, (8, 2, 0)),
    ],
)
def test_published_training_counts(splits, name, classes, images, groups):
    counts = json.loads((splits / name).read_text())
    assert len(counts) == classes
    assert sum(counts) == images
    assert shot_groups(counts) == groups


def test_cifar_lt_counts_equal_the_published_subsets(splits):
    for name, num, n_max in [
        ('CIFAR-10-LT_IMBA100.json', 10, 5000),
        ('CIFAR-100-LT_IMBA100.json', 100, 500),
    ]:
        published = json.loads((splits / name).read_text())
        assert long_tail_counts(num, n_max, 100) == published


# ------------------------------------------------- tiny generated files


def write_coco(path: Path, categories, images, annotations) -> Path:
    path.write_text(
        json.dumps(
            dict(categories=categories, images=images, annotations=annotations)
        )
    )
    return path


def test_inaturalist_json_annotations(tmp_path):
    categories = [
        dict(id=i, name=f'species {i}', supercategory='Plantae')
        for i in range(8142)
    ]
    images = [
        dict(id=10 + k, file_name=f'train_val2018/Plantae/{c}/{k}.jpg')
        for k, c in enumerate([5, 5, 8141, 0])
    ]
    annotations = [
        dict(id=k, image_id=10 + k, category_id=c)
        for k, c in enumerate([5, 5, 8141, 0])
    ]
    ann = write_coco(
        tmp_path / 'val2018.json', categories, images, annotations
    )
    ds = INaturalist2018(ann_file=str(ann), data_root='/inat')
    assert len(ds) == 4
    assert ds.get_gt_labels().tolist() == [5, 5, 8141, 0]
    assert ds.metainfo['classes'][8141] == 'species 8141'
    counts = ds.metainfo['class_counts']
    assert len(counts) == 8142 and sum(counts) == 4 and counts[5] == 2
    assert ds.get_data_info(2)['img_path'] == (
        '/inat/train_val2018/Plantae/8141/2.jpg'
    )


def test_json_category_ids_are_mapped_in_id_order(tmp_path):
    categories = [dict(id=30, name='c'), dict(id=10, name='a')]
    categories.append(dict(id=20, name='b'))
    images = [dict(id=1, file_name='x.jpg'), dict(id=2, file_name='y.jpg')]
    annotations = [
        dict(id=1, image_id=2, category_id=10),
        dict(id=2, image_id=1, category_id=30),
    ]
    ann = write_coco(tmp_path / 'a.json', categories, images, annotations)
    ds = LongTailListDataset(ann_file=str(ann), num_classes=3)
    assert ds.metainfo['classes'] == ('a', 'b', 'c')
    assert ds.get_gt_labels().tolist() == [2, 0]
    assert ds.metainfo['class_counts'] == [1, 0, 1]


def test_json_errors(tmp_path):
    cats = [dict(id=0, name='a'), dict(id=1, name='b')]
    imgs = [dict(id=1, file_name='x.jpg'), dict(id=2, file_name='y.jpg')]
    anns = [dict(id=1, image_id=1, category_id=0)]
    unlabelled = write_coco(tmp_path / 'u.json', cats, imgs, anns)
    with pytest.raises(ValueError, match='image 2.*no annotation'):
        LongTailListDataset(ann_file=str(unlabelled), num_classes=2)
    (tmp_path / 'test.json').write_text(json.dumps(dict(images=imgs)))
    with pytest.raises(ValueError, match='annotations'):
        LongTailListDataset(
            ann_file=str(tmp_path / 'test.json'), num_classes=2
        )
    anns.append(dict(id=2, image_id=2, category_id=7))
    unknown = write_coco(tmp_path / 'k.json', cats, imgs, anns)
    with pytest.raises(ValueError, match='category_id 7'):
        LongTailListDataset(ann_file=str(unknown), num_classes=2)
    anns[-1]['category_id'] = 1
    ok = write_coco(tmp_path / 'ok.json', cats, imgs, anns)
    with pytest.raises(ValueError, match='2 categories.*8142 classes'):
        INaturalist2018(ann_file=str(ok))


def test_list_errors(tmp_path):
    bad = tmp_path / 'bad.txt'
    bad.write_text('a/1.jpg 0\na/2.jpg\n')
    with pytest.raises(ValueError, match='line 2'):
        PlacesLT(ann_file=str(bad))
    bad.write_text('a/1.jpg 0\n\na/2.jpg 365\n')
    with pytest.raises(ValueError, match='label 365.*0..364'):
        PlacesLT(ann_file=str(bad))
    bad.write_text('a/1.jpg zero\n')
    with pytest.raises(ValueError, match='integer label'):
        ImageNetLT(ann_file=str(bad))
    with pytest.raises(ValueError, match='needs ann_file'):
        ImageNetLT(ann_file='')
    with pytest.raises(ValueError, match='2 class names'):
        LongTailListDataset(
            ann_file=str(bad), num_classes=3, classes=['a', 'b']
        )


def test_list_reader_loads_images_through_the_pipeline(tmp_path):
    for name, value in [('a/0.png', 7), ('b/0.png', 9), ('b/my file.png', 11)]:
        path = tmp_path / 'images' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 5, 3), value, np.uint8)).save(path)
    (tmp_path / 'train.txt').write_text(
        'a/0.png 0\nb/0.png 1\nb/my file.png 1\n'
    )
    ds = LongTailListDataset(
        ann_file='train.txt',
        num_classes=2,
        data_root=str(tmp_path),
        data_prefix='images',
        classes=['cat', 'dog'],
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')],
    )
    assert ds.metainfo['classes'] == ('cat', 'dog')
    assert ds.metainfo['class_counts'] == [1, 2]
    sample = ds[2]
    assert tuple(sample['inputs'].shape) == (3, 4, 5)
    assert int(sample['inputs'][0, 0, 0]) == 11
    assert sample['data_samples'].gt_label.tolist() == [1]


def test_lazy_init_and_indices(tmp_path):
    lst = tmp_path / 'l.txt'
    lst.write_text(''.join(f'x/{i}.jpg {i % 3}\n' for i in range(10)))
    lazy = LongTailListDataset(
        ann_file=str(lst), num_classes=3, lazy_init=True
    )
    assert lazy.metainfo['classes'] == ('0', '1', '2')
    assert 'class_counts' not in lazy.metainfo
    assert lazy.get_gt_labels().tolist() == [i % 3 for i in range(10)]
    assert lazy.metainfo['class_counts'] == [4, 3, 3]
    first = LongTailListDataset(ann_file=str(lst), num_classes=3, indices=4)
    assert first.metainfo['class_counts'] == [2, 1, 1]
    assert first.get_gt_labels().tolist() == [0, 1, 2, 0]


def test_places365_names_in_label_order():
    from glag_mm.datasets.lt_lists import PLACES365_CATEGORIES as names

    assert len(names) == len(set(names)) == 365
    assert names[:3] == ('airfield', 'airplane_cabin', 'airport_terminal')
    assert names[8] == 'apartment_building/outdoor'
    assert names[-1] == 'zen_garden'
    assert all(n == n.strip() and n for n in names)
