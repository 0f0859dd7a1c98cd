# GLAG, ResNet-10 on ImageNet-LT: both stages in one command,
#     python tools/train.py configs/glag_r10_imagenetlt.py
# stage one with the Gradual Balanced Loss, then stage two (Adaptive Feature
# Generator + distillation, 40 epochs, cosine) on the frozen stage-one trunk,
# each in its own work_dir (work_dirs/glag_r10_imagenetlt/stage1, stage2).
custom_imports = dict(imports=['glag_mm'], allow_failed_imports=False)
stages = [
    dict(name='stage1', config='graloss/graloss_r10_imagenetlt.py'),
    dict(
        name='stage2', config='glag/afg_r10_imagenetlt.py', init_from='stage1'
    ),
]
