# mmpretrain's runtime plus glag_mm: the plugin's modules, the hook that
# publishes the training class counts, and the best checkpoint by the
# long-tail top-1 of LongTailAccuracy.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['glag_mm'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook',
        interval=10,
        max_keep_ckpts=2,
        save_best='lt/top1',
        rule='greater',
    ),
)

custom_hooks = [dict(type='ClassCountsHook')]
