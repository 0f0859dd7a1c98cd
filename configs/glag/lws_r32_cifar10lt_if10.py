_base_ = ['./crt_r32_cifar10lt_if10.py']

# LWS (Kang et al. 2020) stage two, ResNet-32 on CIFAR-10-LT, imbalance factor
# 10: the cRT setting with the stage-one classifier kept frozen and one
# learnable scale per class.
model = dict(
    head=dict(type='LWSHead', init_cfg=dict(type='StageOne', prefix='head.'))
)
