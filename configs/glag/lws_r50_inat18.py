_base_ = ['./crt_r50_inat18.py']

# LWS (Kang et al. 2020) stage two, ResNet-50 on iNaturalist 2018: the cRT
# setting with the stage-one classifier kept frozen and one learnable scale per
# class.
model = dict(
    head=dict(type='LWSHead', init_cfg=dict(type='StageOne', prefix='head.'))
)
