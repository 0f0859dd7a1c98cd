# GLAG, ResNet-32 on CIFAR-10-LT, imbalance factor 100: both stages in one
# command,
#     python tools/train.py configs/glag_r32_cifar10lt_if100.py
# stage one with the Gradual Balanced Loss, then stage two (Adaptive Feature
# Generator + distillation, 40 epochs, cosine) on the frozen stage-one trunk,
# each in its own work_dir (work_dirs/glag_r32_cifar10lt_if100/stage1, stage2).
custom_imports = dict(imports=['glag_mm'], allow_failed_imports=False)
stages = [
    dict(name='stage1', config='graloss/graloss_r32_cifar10lt_if100.py'),
    dict(
        name='stage2',
        config='glag/afg_r32_cifar10lt_if100.py',
        init_from='stage1',
    ),
]
