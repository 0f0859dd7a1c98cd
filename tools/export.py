"""Export a trained classifier: TorchScript, ONNX or a deployable checkpoint.

    python tools/export.py CONFIG CHECKPOINT --format torchscript --out m.pt
    python tools/export.py CONFIG CHECKPOINT --format onnx --out m.onnx
    python tools/export.py CONFIG CHECKPOINT --format state_dict --out w.pth
        [--linear-head]

The exported graph takes raw pixels (N, C, H, W), as the test pipeline
delivers them (uint8 0..255 for image files, in the pipeline's channel
order; the ONNX input's dtype is printed), and returns float32 logits:
the config's normalisation, the trunk, the head's feature transform
(Tukey's in ``AFGHead``) and its classifier.
Before the file is written the export is run on the first batch of the
config's test data (``--shape N C H W``: random pixels instead) and compared
with the PyTorch model (``--atol``). ``state_dict`` writes the weights
without training statistics, loadable with ``torch.load(...,
weights_only=True)``; ``--linear-head`` turns an ``AFGHead`` into a plain
``LinearClsHead`` where that is exact (``tukey_lambda=1``) and refuses
otherwise. With a two-stage config the last stage's config is used
(``--stage`` picks another).
"""

import argparse
import sys

import torch

import glag_mm  # noqa: F401  (applies the compat fixes before configs load)
from glag_tools import ConfigError
from glag_tools.export import (
    FORMATS,
    build_classifier,
    export_classifier,
    load_export_config,
    sample_batch,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a classifier')
    parser.add_argument('config', help='config file (one stage or two)')
    parser.add_argument('checkpoint', help='checkpoint to export')
    parser.add_argument('--format', choices=FORMATS, default='torchscript')
    parser.add_argument('--out', required=True, help='file to write')
    parser.add_argument(
        '--linear-head',
        action='store_true',
        help='with --format state_dict: a plain LinearClsHead checkpoint '
        '(only where exact, tukey_lambda=1)',
    )
    parser.add_argument('--stage', help='two-stage config: stage to export')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=4,
        metavar=('N', 'C', 'H', 'W'),
        help='check on random pixels of this shape, not the test data',
    )
    parser.add_argument(
        '--num', type=int, default=8, help='test images in the check batch'
    )
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-5,
        help='largest allowed |exported - PyTorch| on the check batch',
    )
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads'
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg, _ = load_export_config(args.config, args.stage)
        model = build_classifier(cfg, args.checkpoint)
        batch = sample_batch(cfg, args.num, args.shape)
        info = export_classifier(
            model,
            cfg,
            batch,
            args.out,
            fmt=args.format,
            linear_head=args.linear_head,
            atol=args.atol,
        )
    except ConfigError as error:
        sys.exit(f'error: {error}')
    print(
        f'wrote {args.out} ({args.format}); on {info["batch_size"]} check '
        f'images the export differs from the PyTorch model by at most '
        f'{info["max_abs_diff"]:.3g}; it takes {info["input_dtype"]} pixels '
        f'(N, C, H, W) as the test pipeline delivers them'
    )


if __name__ == '__main__':
    main()
