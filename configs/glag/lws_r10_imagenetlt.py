_base_ = ['./crt_r10_imagenetlt.py']

# LWS (Kang et al. 2020) stage two, ResNet-10 on ImageNet-LT: the cRT setting
# with the stage-one classifier kept frozen and one learnable scale per class.
model = dict(
    head=dict(type='LWSHead', init_cfg=dict(type='StageOne', prefix='head.'))
)
