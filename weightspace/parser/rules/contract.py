"""Linear maps and contractions: contracted axes are one axis, free axes pass through."""
from __future__ import annotations

from ..context import Context, TensorValue
from .common import broadcast, is_tensor
from .registry import rule


@rule("linear")
def linear(ctx: Context, p: dict, out: TensorValue):
    x, w, b = p["input"], p["weight"], p["bias"]
    ctx.unify(x.axes[-1], w.axes[-1])
    if w.ndim == 2:
        ctx.unify(out.axes[-1], w.axes[0])
    for i in range(x.ndim - 1):
        ctx.unify(out.axes[i], x.axes[i])
    if is_tensor(b):
        broadcast(ctx, out, b)


def _matmul(ctx: Context, a: TensorValue, b: TensorValue, out: TensorValue) -> None:
    """torch.matmul semantics, including 1-D operands and broadcast batch dims."""
    if a.ndim == 1 and b.ndim == 1:
        ctx.unify(a.axes[0], b.axes[0])
        return
    if a.ndim == 1:
        ctx.unify(a.axes[0], b.axes[-2])
        ctx.unify(out.axes[-1], b.axes[-1])
        batch_out = out.ndim - 1
    elif b.ndim == 1:
        ctx.unify(a.axes[-1], b.axes[0])
        ctx.unify(out.axes[-1], a.axes[-2])
        batch_out = out.ndim - 1
    else:
        ctx.unify(a.axes[-1], b.axes[-2])
        ctx.unify(out.axes[-2], a.axes[-2])
        ctx.unify(out.axes[-1], b.axes[-1])
        batch_out = out.ndim - 2
    for t, core in ((a, 2), (b, 2)):
        if t.ndim <= 2:
            continue
        lead = t.ndim - core
        for i in range(lead):
            j = batch_out - lead + i
            if j >= 0 and t.shape[i] == out.shape[j] and t.shape[i] > 1:
                ctx.unify(t.axes[i], out.axes[j])


@rule("matmul", "mm", "bmm")
def matmul(ctx: Context, p: dict, out: TensorValue):
    a = p.get("self", p.get("input"))
    _matmul(ctx, a, p["mat2"] if "mat2" in p else p["other"], out)


@rule("addmm", "baddbmm", "addbmm")
def addmm(ctx: Context, p: dict, out: TensorValue):
    a = p.get("mat1", p.get("batch1"))
    b = p.get("mat2", p.get("batch2"))
    _matmul(ctx, a, b, out)
    broadcast(ctx, out, p["self"])


@rule("addmv", "mv")
def addmv(ctx: Context, p: dict, out: TensorValue):
    _matmul(ctx, p["mat"], p["vec"], out)
    if is_tensor(p.get("self")) and "mat" in p and p["self"] is not p["mat"]:
        broadcast(ctx, out, p["self"])


@rule("einsum")
def einsum(ctx: Context, p: dict, out: TensorValue):
    equation = p["equation"].replace(" ", "")
    operands = list(p["tensors"])
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    if "->" not in equation:
        letters = sorted({c for c in lhs if c.isalpha() and lhs.count(c) == 1})
        rhs = ("..." if "..." in lhs else "") + "".join(letters)
    if len(terms) != len(operands) or not all(is_tensor(t) for t in operands):
        ctx.unknown([*operands, out], "aten.einsum", "unsupported equation")
        return
    by_letter: dict[str, list[int]] = {}
    ellipsis: list[list[list[int]]] = []

    def bind_term(term: str, t: TensorValue) -> list[tuple[list[int], int]]:
        """Bind the term's letters to t's axes; return the (axis, size) pairs under '...'."""
        pre, _, post = term.partition("...") if "..." in term else (term, "", "")
        for i, c in enumerate(pre):
            _bind(ctx, by_letter, c, t.axes[i], t.shape[i])
        for i, c in enumerate(post):
            k = t.ndim - len(post) + i
            _bind(ctx, by_letter, c, t.axes[k], t.shape[k])
        span = slice(len(pre), t.ndim - len(post))
        return list(zip(t.axes[span], t.shape[span])) if "..." in term else []

    for term, t in zip(terms, operands):
        ell = bind_term(term, t)
        if "..." in term:
            ellipsis.append(ell)
    ell_out = bind_term(rhs, out)
    for ell in ellipsis:
        for i in range(1, min(len(ell), len(ell_out)) + 1):
            (a, na), (b, nb) = ell[-i], ell_out[-i]
            if na == nb > 1:
                ctx.unify(a, b)


def _bind(ctx: Context, by_letter: dict, letter: str, axis: list[int], size: int) -> None:
    if size <= 1:
        return
    seen = by_letter.get(letter)
    if seen is None:
        by_letter[letter] = axis
    else:
        ctx.unify(seen, axis)
