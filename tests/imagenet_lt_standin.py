"""An ImageNet-LT stand-in: the real split lists' shape, tiny images.

``write_imagenet_lt(root, counts)`` writes ``root/meta/ImageNet_LT_{train,
val,test}.txt`` (``train/<wnid>/<i>.JPEG label`` lines: ``counts[c]``
training, 20 validation and 50 test lines per class, as the published
lists) and one 8 x 8 JPEG per class and split that every line of that class
names, so 1,000 classes cost 3,000 small files. ``imagenet_lt_counts()``:
the published per-class training counts where the development data is
beside the repository, else a stand-in with the same range and group sizes
(:func:`formula_counts`).

    python tests/imagenet_lt_standin.py DIR   # a stand-in in DIR/data/imagenet
"""

import json
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image

SPLITS = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'lt-splits'
PER_SPLIT = {'val': 20, 'test': 50}


def formula_counts() -> List[int]:
    """1,000 counts from 1,280 down to 5 with ImageNet-LT's group sizes:
    385 classes above 100 images, 479 of 20 to 100, 136 below 20."""
    many = np.geomspace(1280, 101, 385)
    medium = np.geomspace(100, 20, 479)
    few = np.geomspace(19, 5, 136)
    return [int(round(n)) for n in np.concatenate([many, medium, few])]


def imagenet_lt_counts() -> Optional[List[int]]:
    """The published counts (None where the development data is absent)."""
    path = SPLITS / 'ImageNet_LT.json'
    return json.loads(path.read_text()) if path.is_file() else None


def write_imagenet_lt(root: Path, counts: List[int]) -> str:
    """The stand-in in ``root`` (module docstring); returns ``str(root)``."""
    root = Path(root)
    rng = np.random.default_rng(0)
    (root / 'meta').mkdir(parents=True, exist_ok=True)
    lists = {'train': [], 'val': [], 'test': []}
    for c, n in enumerate(counts):
        for split, lines in lists.items():
            folder = root / split / f'n{c:08d}'
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            pixels[:, :, c % 3] = 40 + (c * 7) % 200  # a class colour
            Image.fromarray(pixels).save(folder / 'img.JPEG', quality=90)
            many = n if split == 'train' else PER_SPLIT[split]
            lines += [f'{split}/n{c:08d}/img.JPEG {c}\n'] * many
    for split, lines in lists.items():
        name = root / 'meta' / f'ImageNet_LT_{split}.txt'
        name.write_text(''.join(lines))
    return str(root)


if __name__ == '__main__':
    out = Path(sys.argv[1]) / 'data' / 'imagenet'
    counts = imagenet_lt_counts() or formula_counts()
    write_imagenet_lt(out, counts)
    print(f'{out}: {len(counts)} classes, {sum(counts)} training lines')
