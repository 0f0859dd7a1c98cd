# Stage one with the Feature-Balanced Loss head (lambda = 60 on CIFAR). On a
# 30-epoch schedule the authors' per-epoch curriculum (e / (E - 10))^2 would
# end at 2.1, so the GraLoss family's convex a(u) = u^2 is used instead.
_base_ = ['../_base_/cifar10lt_if100_r32_30e.py']
model = dict(head=dict(type='FBLHead', fbl_lambda=60.0, curriculum='convex'))
