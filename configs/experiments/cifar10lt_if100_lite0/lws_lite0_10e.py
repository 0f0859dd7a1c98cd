# LWS: the linear probe's classifier, frozen, with a learnable scale per class.
_base_ = ['../_base_/cifar10lt_if100_lite0_stage_two_10e.py']
model = dict(
    head=dict(type='LWSHead', init_cfg=dict(type='StageOne', prefix='head.'))
)
