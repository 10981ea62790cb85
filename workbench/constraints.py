"""Constraints written as text in specs: linear constraints over parameter names
(``"water + ethanol <= 0.8"``) and outcome constraints (``"impurity <= 0.05"``).

Parsing uses Python's ``ast`` on the expression, never ``eval``: only numbers,
names, ``+``, ``-``, ``*`` and ``/`` by numbers, and one comparison
(``<=``, ``>=`` or ``==``) are accepted, so a spec cannot run code.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

_OPS = {ast.LtE: "<=", ast.GtE: ">=", ast.Eq: "=="}


@dataclass(frozen=True)
class LinearConstraint:
    """``sum(coefficients[name] * name) op rhs`` in user units; op is <=, >= or ==."""

    coefficients: tuple[tuple[str, float], ...]
    op: str
    rhs: float
    text: str

    def as_le_rows(self) -> list[tuple[dict[str, float], float]]:
        """The constraint as ``a @ x <= b`` rows (an equality gives none: see ``op``)."""
        coeffs = dict(self.coefficients)
        if self.op == ">=":
            return [({k: -v for k, v in coeffs.items()}, -self.rhs)]
        return [(coeffs, self.rhs)]


@dataclass(frozen=True)
class OutcomeConstraint:
    """``name op bound`` on a measured outcome; op is <= or >=."""

    name: str
    op: str
    bound: float
    text: str

    def satisfied(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound


def _linear(node: ast.AST, text: str) -> tuple[dict[str, float], float]:
    """A linear expression as ({name: coefficient}, constant)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return {}, float(node.value)
    if isinstance(node, ast.Name):
        return {node.id: 1.0}, 0.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        c, k = _linear(node.operand, text)
        s = -1.0 if isinstance(node.op, ast.USub) else 1.0
        return {n: s * v for n, v in c.items()}, s * k
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        c1, k1 = _linear(node.left, text)
        c2, k2 = _linear(node.right, text)
        s = 1.0 if isinstance(node.op, ast.Add) else -1.0
        out = dict(c1)
        for n, v in c2.items():
            out[n] = out.get(n, 0.0) + s * v
        return out, k1 + s * k2
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
        c1, k1 = _linear(node.left, text)
        c2, k2 = _linear(node.right, text)
        if isinstance(node.op, ast.Div):
            if c2:
                raise ValueError(f"got {text!r}; division by a parameter is not linear")
            if k2 == 0:
                raise ValueError(f"got {text!r}; division by zero")
            return {n: v / k2 for n, v in c1.items()}, k1 / k2
        if c1 and c2:
            raise ValueError(f"got {text!r}; a product of two parameters is not linear")
        if c2:
            c1, k1, c2, k2 = c2, k2, c1, k1
        return {n: v * k2 for n, v in c1.items()}, k1 * k2
    raise ValueError(f"got {text!r}; expected a linear expression of parameter names and"
                     " numbers with + - * /")


def _comparison(text: str) -> tuple[ast.AST, str, ast.AST]:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"got {text!r}; expected text such as 'a + b <= 1'")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"got {text!r}; expected one comparison such as 'a + b <= 1'"
                         " (operators <=, >=, ==)") from None
    if not (isinstance(tree, ast.Compare) and len(tree.ops) == 1
            and type(tree.ops[0]) in _OPS):
        raise ValueError(f"got {text!r}; expected exactly one comparison with <=, >= or ==")
    return tree.left, _OPS[type(tree.ops[0])], tree.comparators[0]


def parse_linear_constraint(text: str, names: list[str]) -> LinearConstraint:
    """Parse ``"2*a - b >= 0.5"`` over the parameter ``names``; ValueError says why not."""
    left, op, right = _comparison(text)
    c1, k1 = _linear(left, text)
    c2, k2 = _linear(right, text)
    coeffs = dict(c1)
    for n, v in c2.items():
        coeffs[n] = coeffs.get(n, 0.0) - v
    unknown = [n for n in coeffs if n not in names]
    if unknown:
        raise ValueError(f"got {text!r}; {unknown} name no parameter; expected names from"
                         f" {names}")
    coeffs = {n: v for n, v in coeffs.items() if v != 0.0}
    if not coeffs:
        raise ValueError(f"got {text!r}; expected at least one parameter with a non-zero"
                         " coefficient")
    rhs = k2 - k1
    if not all(math.isfinite(v) for v in (*coeffs.values(), rhs)):
        raise ValueError(f"got {text!r}; coefficients must be finite")
    ordered = tuple((n, coeffs[n]) for n in names if n in coeffs)
    return LinearConstraint(ordered, op, rhs, text.strip())


def parse_outcome_constraint(text: str) -> OutcomeConstraint:
    """Parse ``"impurity <= 0.05"`` (also ``0.05 >= impurity``); ValueError says why not."""
    left, op, right = _comparison(text)
    if op == "==":
        raise ValueError(f"got {text!r}; an outcome can be bounded with <= or >=, not ==")
    if isinstance(right, ast.Name) and not isinstance(left, ast.Name):
        left, right = right, left
        op = "<=" if op == ">=" else ">="
    if not isinstance(left, ast.Name):
        raise ValueError(f"got {text!r}; expected 'outcome <= number' or 'outcome >= number'")
    _, bound = _linear(right, text) if not isinstance(right, ast.Name) else ({"x": 1}, 0.0)
    if isinstance(right, ast.Name) or _linear(right, text)[0]:
        raise ValueError(f"got {text!r}; expected a number on the other side of {op}")
    if not math.isfinite(bound):
        raise ValueError(f"got {text!r}; expected a finite bound")
    return OutcomeConstraint(left.id, op, bound, text.strip())


__all__ = ["LinearConstraint", "OutcomeConstraint", "parse_linear_constraint",
           "parse_outcome_constraint"]
