# LWS: the stage-one classifier, frozen, with a learnable scale per class.
_base_ = ['./_base_/stage_two_r8.py']
model = dict(
    head=dict(type='LWSHead', init_cfg=dict(type='StageOne', prefix='head.'))
)
