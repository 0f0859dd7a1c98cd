"""The stage-two model: an image classifier over a frozen trunk that also
takes the trunk's cached features (docs/method.md, stage two item 1).

Stage two trains only the classifier, so the trunk's output for an image is
the same in every epoch and can be computed once
(:class:`~glag_mm.engine.StageTwoTrainLoop`). The model then meets two kinds
of batches: images, which go through the data preprocessor, backbone and
neck as in mmpretrain's ``ImageClassifier``; and cached features, a 2-D
``inputs`` tensor (N, D) that goes to the head as it is. The rule is the
inputs' shape: images are (N, C, H, W), a feature batch is (N, D).
"""

import copy
from typing import Optional

from mmengine.model import BaseDataPreprocessor
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS
from torch import Tensor

#: the backbone types that are frozen already
_FROZEN = ('FrozenBackbone', 'glag_mm.FrozenBackbone')


def is_feature_batch(inputs) -> bool:
    """Whether ``inputs`` is a batch of cached features (N, D)."""
    return isinstance(inputs, Tensor) and inputs.dim() == 2


class FeaturesOrImages(BaseDataPreprocessor):
    """The model's data preprocessor for images (``images``); a feature
    batch is only moved to the model's device. Other attributes (``mean``,
    ``std``, ``to_rgb``) are those of ``images``."""

    def __init__(self, images: BaseDataPreprocessor) -> None:
        super().__init__()
        self.images = images

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__('images'), name)

    def forward(self, data: dict, training: bool = False) -> dict:
        if not is_feature_batch(data['inputs']):
            return self.images(data, training)
        inputs = self.cast_data(data['inputs'])
        if inputs.device.type == 'cpu':  # the samples are there already
            return dict(data, inputs=inputs)
        return self.cast_data(data)


@MODELS.register_module()
class StageTwoClassifier(ImageClassifier):
    """mmpretrain's ``ImageClassifier`` with a frozen trunk, for stage two.

    ``model.type='StageTwoClassifier'`` in a stage-one config: the backbone
    dict is wrapped in :class:`~glag_mm.models.backbones.FrozenBackbone`
    (no gradients, eval mode, loaded from the run's
    ``stage_one_checkpoint``; a dict that is a ``FrozenBackbone`` already is
    kept), the neck is frozen too, and a 2-D ``inputs`` batch is taken as
    the trunk's features (module docstring). The state dict has the
    stage-one model's keys.

    Args:
        backbone: the stage-one backbone dict (or a ``FrozenBackbone``).
        **kwargs: as ``ImageClassifier`` (neck, head, data_preprocessor,
            train_cfg, init_cfg).
    """

    def __init__(
        self, backbone: dict, data_preprocessor: Optional[dict] = None, **kw
    ) -> None:
        if (
            not isinstance(backbone, dict)
            or backbone.get('type') not in _FROZEN
        ):
            # FrozenBackbone names a backbone that is not a config dict
            backbone = dict(type='FrozenBackbone', backbone=backbone)
        super().__init__(
            backbone, data_preprocessor=copy.deepcopy(data_preprocessor), **kw
        )
        if self.with_neck:
            self.neck.requires_grad_(False)
        self.data_preprocessor = FeaturesOrImages(self.data_preprocessor)

    @property
    def image_preprocessor(self) -> BaseDataPreprocessor:
        """The preprocessor of image batches (the configured one)."""
        return self.data_preprocessor.images

    def train(self, mode: bool = True) -> 'StageTwoClassifier':
        """The head trains; backbone and neck stay in eval mode."""
        super().train(mode)
        if self.with_neck:
            self.neck.train(False)
        return self

    def extract_feat(self, inputs: Tensor, stage: str = 'neck'):
        """The trunk's features of images; a feature batch as it is."""
        if is_feature_batch(inputs):
            return (inputs,)
        return super().extract_feat(inputs, stage)
