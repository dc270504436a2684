"""MODULE:FACTORY targets for the `weightspace align` CLI tests."""
from __future__ import annotations

from .digits import batches, digits, mlp


def digits_mlp():
    """(template model, example inputs) of the digits MLP."""
    return mlp(), (digits()[0][:60],)


def digits_test_batches():
    _, _, xt, yt = digits()
    return batches(xt, yt, 199)
