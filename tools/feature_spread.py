"""Per-class spread of training vs unseen features through a checkpoint.

    python tools/feature_spread.py CONFIG CHECKPOINT [--split val|test]
        [--stage NAME] [--out spread.json]

Prints a Markdown table, one row per class and one per many / medium /
few group: how far the class's evaluation features spread around the mean
of its training features, against the training features' own spread (the
ratio; 1 = no gap), the drift of the mean, and the head's accuracy on each
(measures: ``tools/glag_tools/feature_spread.py``). The training split is
read with the evaluation split's pipeline. ``--split`` defaults to the
validation split, so what this shows can guide choices without the test
labels. With a two-stage config the last stage's config is used.
"""

import argparse
import json
import sys

import glag_mm  # noqa: F401  (applies the compat fixes before configs load)
from glag_tools import ConfigError
from glag_tools.export import build_classifier, load_export_config
from glag_tools.feature_spread import (
    extract_features,
    format_table,
    group_means,
    pipeline_of,
    spread_table,
    with_pipeline,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Per-class spread of training vs unseen features'
    )
    parser.add_argument('config', help='config file (one stage or two)')
    parser.add_argument('checkpoint', help='checkpoint whose trunk to read')
    parser.add_argument(
        '--split',
        choices=('val', 'test'),
        default='val',
        help='the unseen split (default: validation)',
    )
    parser.add_argument('--stage', help='two-stage config: stage to use')
    parser.add_argument('--out', help='also write the rows as JSON here')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        cfg, _ = load_export_config(args.config, args.stage)
        model = build_classifier(cfg, args.checkpoint)
    except ConfigError as error:
        sys.exit(f'error: {error}')
    eval_loader = cfg.get(f'{args.split}_dataloader', None)
    if not eval_loader:
        sys.exit(f'error: the config has no {args.split}_dataloader.')
    train_loader = dict(cfg.train_dataloader)
    train_loader['dataset'] = with_pipeline(
        train_loader['dataset'], pipeline_of(eval_loader['dataset'])
    )
    train = extract_features(model, train_loader)
    unseen = extract_features(model, dict(eval_loader))

    def predict(feats):
        return model.head(tuple([feats])).argmax(1)

    rows = spread_table(train, unseen, predict, model.head.num_classes)
    evaluator = cfg.get(f'{args.split}_evaluator', None)
    if not isinstance(evaluator, dict):  # a list, or none: the defaults
        evaluator = {}
    groups = group_means(
        rows,
        many=evaluator.get('many_threshold', 100),
        few=evaluator.get('few_threshold', 20),
    )
    print(format_table(rows, groups))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(rows=rows, groups=groups), f, indent=1)


if __name__ == '__main__':
    main()
