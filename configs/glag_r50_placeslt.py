# GLAG, ResNet-50 on Places-LT: both stages in one command,
#     python tools/train.py configs/glag_r50_placeslt.py
# stage one with the Gradual Balanced Loss, then stage two (Adaptive Feature
# Generator + distillation, 40 epochs, cosine) on the frozen stage-one trunk,
# each in its own work_dir (work_dirs/glag_r50_placeslt/stage1, stage2). Stage
# one is the Places-LT GraLoss recipe with a ResNet-50 trunk (the recipe's
# config uses ResNet-152; cfg_options swap the depth and its ImageNet
# initialisation).

custom_imports = dict(imports=['glag_mm'], allow_failed_imports=False)
stages = [
    dict(
        name='stage1',
        config='graloss/graloss_r152_placeslt.py',
        cfg_options={
            'model.backbone.depth': 50,
            'model.backbone.init_cfg.checkpoint': 'https://download.openmmlab.com/mmclassification/v0/resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth',
        },
    ),
    dict(name='stage2', config='glag/afg_r50_placeslt.py', init_from='stage1'),
]
