_base_ = ['./crt_r32_cifar100lt_if100.py']

# LWS (Kang et al. 2020) stage two, ResNet-32 on CIFAR-100-LT, imbalance factor
# 100: the cRT setting with the stage-one classifier kept frozen and one
# learnable scale per class.
model = dict(
    head=dict(type='LWSHead', init_cfg=dict(type='StageOne', prefix='head.'))
)
