"""The training block of a spec: a built-in model's fixed training settings (pure
pydantic), one field per row of ``search.knobs``'s table with ``training`` set (its default
and bounds), plus the CNN's structured ``conv`` blocks. Part of the spec contract, kept
apart from ``search.spec`` for size; import ``TrainingSpec`` from ``search.spec``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model, field_validator

from search._conv import ConvBlockSpec, default_conv
from search._params import Strict as _Strict
from search._params import knob_field
from search.knobs import KNOB, TRAINING


class _TrainingFields(_Strict):
    """Fixed training settings; any knob named in ``search.space`` overrides its value here.

    Regularisation: ``weight_decay`` is L2 (decoupled for ``adamw``), ``l1`` adds
    ``l1 * sum |w|`` over the layers' weights (not biases) to the loss, ``keep_prob`` is
    inverted dropout. ``batch_norm`` adds BatchNorm1d after each hidden linear layer, before
    its activation (evaluation uses the running statistics gathered in training).

    ``residual``: the first hidden layer maps the inputs to its width, then the following
    hidden layers pair up into blocks with a shortcut around each pair (a last unpaired
    layer is plain). Where a pair's output width differs from its input width the shortcut
    is a learned linear projection, so every ``hidden`` works, fixed or searched: e.g.
    ``[64, 64, 64]`` is one layer and one identity-shortcut block, ``[64, 32, 32]`` one
    layer and a block whose shortcut projects 64 to 32.

    Learning-rate schedule (per epoch): ``lr_warmup_epochs`` epochs of linear warm-up
    (epoch k <= W trains with ``lr * k / (W + 1)``), then, t epochs after the warm-up:
    ``constant`` lr; ``step`` ``lr * lr_gamma ** (t // lr_step_epochs)``;
    ``exponential`` ``lr * lr_gamma ** t``; ``cosine`` ``lr * (1 + cos(pi t / T)) / 2``
    over the T = epochs - W epochs that follow the warm-up.

    ``clip_norm``: the gradient's global L2 norm is clipped to it before each update.

    Early stopping (``patience`` set; None = off): training ends once the dev loss has not
    improved by more than ``min_delta`` for ``patience`` epochs. The trial is complete, not
    pruned: it keeps its best epoch's weights, and its objective and metrics are that
    epoch's; its record says at which epoch it stopped and which epoch it kept.
    """

    @field_validator(
        *(k for k in TRAINING if KNOB[k].kind == "bool"), mode="before", check_fields=False
    )
    @classmethod
    def _strict_bool(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError("must be true or false")
        return v

    @field_validator(*(k for k in TRAINING if KNOB[k].kind == "layers"), check_fields=False)
    @classmethod
    def _layer_sizes(cls, v: list[int], info: Any) -> list[int]:
        high = KNOB[info.field_name].high
        if any(not 1 <= u <= (high or 0) for u in v):
            raise ValueError(f"layer sizes must be between 1 and {high:g}")
        return v


if TYPE_CHECKING:

    class TrainingSpec(_TrainingFields):
        conv: list[ConvBlockSpec]

        def __getattr__(self, name: str) -> Any: ...  # the table's fields

else:
    # model: cnn only: the blocks (search knobs conv_channels, kernel_size, stride, pool,
    # conv_batch_norm and conv_head override them; see search._conv), before conv_head
    _CONV = (list[ConvBlockSpec], Field(default_factory=default_conv, min_length=1, max_length=8))
    _FIELDS: dict[str, Any] = {}
    for _name in TRAINING:
        if _name == "conv_head":
            _FIELDS["conv"] = _CONV
        _FIELDS[_name] = knob_field(KNOB[_name])
    TrainingSpec = create_model(
        "TrainingSpec",
        __base__=_TrainingFields,
        __doc__=_TrainingFields.__doc__,
        __module__=__name__,
        **_FIELDS,
    )


__all__ = ["TrainingSpec"]
