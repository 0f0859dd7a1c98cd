"""Readers for the published long-tail split files.

ImageNet-LT and Places-LT (Liu et al., OLTR, 2019) and iNaturalist 2018
ship as ``relative/path.jpg label`` list files, reused by the decoupling
literature (docs/method.md, evaluation conventions). Only the list (or json) is
parsed, no image opened: the 437,513-line iNaturalist list loads in about a
second. ``metainfo['class_counts']`` counts the split read.
"""

import json
import os.path as osp
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import force_full_init
from mmengine.fileio import get_text
from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from mmpretrain.registry import DATASETS

from ..core import check_integer

# The 365 scene names of Places365-Standard (Zhou et al., 2017) in Places-LT's
# label order, which mmpretrain does not ship: a data file, one per line.
PLACES365_CATEGORIES = tuple(
    Path(__file__).with_name('places365_categories.txt').read_text().split()
)


def _parse_list(text: str, source: str) -> Tuple[List[str], List[int]]:
    """Split ``path label`` lines; blank lines are skipped."""
    paths, labels = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        parts = line.rsplit(None, 1)
        if not parts:
            continue
        try:
            if len(parts) != 2:
                raise ValueError
            labels.append(int(parts[1]))
        except ValueError:
            raise ValueError(
                f'{source}, line {line_no}: expected "relative/path label" '
                f'with an integer label, got {line!r}'
            ) from None
        paths.append(parts[0])
    return paths, labels


def _parse_coco_json(
    text: str, source: str
) -> Tuple[List[str], List[int], List[str]]:
    """(paths, labels, names) of COCO-like json; class index = rank of
    ``categories[].id`` (iNaturalist 2018's are already 0..8141)."""
    data = json.loads(text)
    missing = [
        k for k in ('images', 'annotations', 'categories') if k not in data
    ]
    if missing:
        raise ValueError(
            f'{source}: a COCO-like annotation file needs the keys images, '
            f'annotations and categories; {missing} missing (the unlabelled '
            'iNaturalist test2018.json cannot be read; the long-tail '
            'literature tests on val2018.json).'
        )
    categories = sorted(data['categories'], key=lambda c: c['id'])
    cat_index = {c['id']: i for i, c in enumerate(categories)}
    names = [str(c.get('name', c['id'])) for c in categories]
    label_of = {}
    for ann in data['annotations']:
        cat = ann['category_id']
        if cat not in cat_index:
            raise ValueError(
                f'{source}: annotation of image {ann["image_id"]} has '
                f'category_id {cat}, which is not among the categories'
            )
        previous = label_of.setdefault(ann['image_id'], cat_index[cat])
        if previous != cat_index[cat]:
            raise ValueError(
                f'{source}: image {ann["image_id"]} has annotations of two '
                'categories; a single-label reader needs one.'
            )
    paths, labels = [], []
    for img in data['images']:
        if img['id'] not in label_of:
            raise ValueError(
                f'{source}: image {img["id"]} ({img["file_name"]}) has no '
                'annotation; give a labelled split.'
            )
        paths.append(img['file_name'])
        labels.append(label_of[img['id']])
    return paths, labels, names


@DATASETS.register_module()
class LongTailListDataset(BaseDataset):
    """A single-label split of C classes from ``relative/path.jpg label``
    lines or (``.json``) COCO-like annotations; paths resolve as in
    mmpretrain's ``CustomDataset`` with an ``ann_file``."""

    #: the subclass's class count and names (names default to '0'..'C-1')
    NUM_CLASSES: Optional[int] = None
    DEFAULT_CLASSES: Optional[Sequence[str]] = None

    def __init__(
        self,
        ann_file: str,
        num_classes: Optional[int] = None,
        data_root: str = '',
        data_prefix: Union[str, dict] = '',
        classes: Optional[Sequence[str]] = None,
        **kwargs,
    ) -> None:
        if not ann_file:
            raise ValueError(
                f'{type(self).__name__} needs ann_file, the split list '
                '(e.g. ImageNet_LT_train.txt) or json annotations'
            )
        self.num_classes = check_integer(
            'num_classes', num_classes or self.NUM_CLASSES, at_least=1
        )
        if classes is not None and len(classes) != self.num_classes:
            raise ValueError(
                f'{len(classes)} class names given for {self.num_classes} '
                'classes'
            )
        self._user_classes = classes is not None
        self._gt_labels = np.zeros(0, dtype=np.int64)
        self._loaded_labels: Optional[np.ndarray] = None
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            classes=classes,
            **kwargs,
        )
        # Names are known before loading (lazy_init) except a json's.
        self._metainfo.setdefault('classes', self._default_classes())

    def _default_classes(self) -> Tuple[str, ...]:
        names = self.DEFAULT_CLASSES or map(str, range(self.num_classes))
        return tuple(names)

    def load_data_list(self) -> List[dict]:
        """Parse the split file (no image is opened)."""
        text = get_text(self.ann_file)
        if self.ann_file.lower().endswith('.json'):
            paths, labels, names = _parse_coco_json(text, self.ann_file)
            if len(names) != self.num_classes:
                raise ValueError(
                    f'{self.ann_file}: {len(names)} categories, but '
                    f'{type(self).__name__} has {self.num_classes} classes'
                )
        else:
            paths, labels = _parse_list(text, self.ann_file)
            names = None
        if not paths:
            raise ValueError(f'{self.ann_file}: no sample in the split file')
        label_array = np.asarray(labels, dtype=np.int64)
        bad = np.flatnonzero(
            (label_array < 0) | (label_array >= self.num_classes)
        )
        if bad.size:
            raise ValueError(
                f'{self.ann_file}: label {int(label_array[bad[0]])} of '
                f'{paths[bad[0]]} is outside 0..{self.num_classes - 1}'
            )
        if names is not None and not self._user_classes:
            self._metainfo['classes'] = tuple(names)
        self._metainfo.setdefault('classes', self._default_classes())
        self._loaded_labels = label_array
        prefix = self.img_prefix
        return [
            {
                'img_path': osp.join(prefix, path) if prefix else path,
                'gt_label': label,
            }
            for path, label in zip(paths, labels)
        ]

    def full_init(self) -> None:
        """Load the split, then count its images per class."""
        if self._fully_initialized:
            return
        super().full_init()
        loaded, self._loaded_labels = self._loaded_labels, None
        if self._indices is None and len(loaded) == len(self):
            self._gt_labels = loaded  # no subset or filter was applied
        else:
            self._gt_labels = np.fromiter(
                (self.get_data_info(i)['gt_label'] for i in range(len(self))),
                dtype=np.int64,
                count=len(self),
            )
        self._metainfo['class_counts'] = np.bincount(
            self._gt_labels, minlength=self.num_classes
        ).tolist()

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """Labels of all samples (int64), without unpickling each one."""
        return self._gt_labels.copy()

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        return [int(self._gt_labels[idx])]


@DATASETS.register_module()
class ImageNetLT(LongTailListDataset):
    """ImageNet-LT: 1,000 classes, ImageNet's label order and names.

    Splits: ImageNet_LT_train.txt (115,846 images, 5 to 1,280 per class),
    ImageNet_LT_val.txt (20 per class, drawn from ImageNet's train set),
    ImageNet_LT_test.txt (50 per class, ImageNet's val set). Set
    ``data_root`` to the ImageNet folder holding ``train/`` and ``val/``.
    """

    NUM_CLASSES = 1000
    DEFAULT_CLASSES = IMAGENET_CATEGORIES


@DATASETS.register_module()
class PlacesLT(LongTailListDataset):
    """Places-LT: 365 classes of Places365-Standard, with their names.

    Splits: Places_LT_train.txt (62,500 images, 5 to 4,980 per class),
    Places_LT_val.txt (20 per class), Places_LT_test.txt (100 per class,
    Places365's val set). Set ``data_root`` to the Places365 folder.
    """

    NUM_CLASSES = 365
    DEFAULT_CLASSES = PLACES365_CATEGORIES


@DATASETS.register_module()
class INaturalist2018(LongTailListDataset):
    """iNaturalist 2018: 8,142 species. A list file (iNaturalist18_train.txt:
    437,513 images, 2 to 1,000 per class; iNaturalist18_val.txt: 24,426, the
    literature's test set) or the official json (train2018.json,
    val2018.json, which also give the names). ``data_root``: the folder
    holding ``train_val2018/``."""

    NUM_CLASSES = 8142
