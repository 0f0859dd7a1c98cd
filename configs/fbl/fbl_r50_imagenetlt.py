_base_ = ['../ce/ce_r50_imagenetlt.py']

# Feature-Balanced Loss head in place of LinearClsHead; lambda = 150 on
# ImageNet-LT, the authors' per-epoch curriculum.
model = dict(head=dict(type='FBLHead', fbl_lambda=150.0))
