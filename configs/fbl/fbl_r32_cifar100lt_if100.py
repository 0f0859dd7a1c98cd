_base_ = ['../ce/ce_r32_cifar100lt_if100.py']

# Feature-Balanced Loss head in place of LinearClsHead; lambda = 60 on CIFAR,
# the authors' per-epoch curriculum.
model = dict(head=dict(type='FBLHead', fbl_lambda=60.0))
