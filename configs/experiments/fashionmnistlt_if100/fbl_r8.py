# Stage one with the Feature-Balanced Loss head (lambda = 60, the authors'
# small-dataset value). The authors' per-epoch curriculum (e / (E - 10))^2
# needs more than 10 epochs, so the GraLoss family's convex a(u) = u^2 over
# the 8 epochs is used instead.
_base_ = ['./_base_/stage_one_r8_8e.py']
model = dict(head=dict(type='FBLHead', fbl_lambda=60.0, curriculum='convex'))
