"""Constraints written in specs: linear constraints over parameter names
(``"water + ethanol <= 0.8"``), nonlinear ones (``"x1**2 + x2**2 <= 1"``),
cardinality constraints (:class:`NChooseK`: at most k of these ingredients
present) and outcome constraints (``"impurity <= 0.05"``).

Parsing uses Python's ``ast`` on the expression, never ``eval``: numbers,
parameter names, ``+ - * /``, ``**`` with a numeric exponent, unary minus and
the functions in ``FUNCTIONS``, and one comparison (``<=``, ``>=`` or ``==``)
are accepted; names, attributes, calls and every other construct are refused,
so a spec cannot run code. A nonlinear expression compiles to a function of
arrays written once over an array namespace (numpy to check a spec without
JAX, ``jax.numpy`` to differentiate it in the optimiser).
"""

from __future__ import annotations

import ast
import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

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


# -- nonlinear constraints ----------------------------------------------------------

# Functions a nonlinear constraint may call: name -> the attribute of the array
# namespace (numpy and jax.numpy spell these alike). All are smooth where defined.
FUNCTIONS = ("exp", "log", "sqrt")
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
# Exponents a nonlinear constraint may raise to: a number, so the expression stays a
# polynomial-like smooth function (x ** y of two parameters is refused).
MAX_EXPONENT = 100.0

Expression = Callable[[dict, Any], Any]


def _refused(node: ast.AST, text: str) -> ValueError:
    what = {ast.Attribute: "attribute access", ast.Call: "a call", ast.Subscript: "indexing",
            ast.Lambda: "a lambda", ast.Compare: "a second comparison",
            ast.BoolOp: "and / or", ast.Constant: "a non-numeric constant"}.get(type(node),
                                                                                type(node).__name__)
    return ValueError(f"got {text!r}; {what} is not allowed; expected numbers, parameter names,"
                      f" + - * /, ** with a numeric exponent and the functions"
                      f" {list(FUNCTIONS)}")


def _number(node: ast.AST) -> float | None:
    """The value of a numeric literal (with unary signs), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _number(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _compile(node: ast.AST, text: str, names: list[str], used: set[str]) -> Expression:
    """An expression node as ``f(values, xp)``: values maps names to arrays, xp is the
    array namespace. Only the whitelisted constructs compile; everything else raises."""
    value = _number(node)
    if value is not None:
        if not math.isfinite(value):
            raise ValueError(f"got {text!r}; numbers must be finite")
        return lambda v, xp: value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ValueError(f"got {text!r}; {node.id!r} names no parameter; expected names"
                             f" from {names}")
        used.add(node.id)
        name = node.id
        return lambda v, xp: v[name]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _compile(node.operand, text, names, used)
        if isinstance(node.op, ast.UAdd):
            return inner
        return lambda v, xp: -inner(v, xp)
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left = _compile(node.left, text, names, used)
        right = _compile(node.right, text, names, used)
        op = _ARITHMETIC[type(node.op)]
        if op == "/" and _number(node.right) == 0.0:
            raise ValueError(f"got {text!r}; division by zero")
        return {"+": lambda v, xp: left(v, xp) + right(v, xp),
                "-": lambda v, xp: left(v, xp) - right(v, xp),
                "*": lambda v, xp: left(v, xp) * right(v, xp),
                "/": lambda v, xp: left(v, xp) / right(v, xp)}[op]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        exponent = _number(node.right)
        if exponent is None or not abs(exponent) <= MAX_EXPONENT:
            raise ValueError(f"got {text!r}; ** needs a numeric exponent of at most"
                             f" {MAX_EXPONENT:g} in size, such as x**2")
        base = _compile(node.left, text, names, used)
        return lambda v, xp: base(v, xp) ** exponent
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in FUNCTIONS and len(node.args) == 1 and not node.keywords:
        arg = _compile(node.args[0], text, names, used)
        fn = node.func.id
        return lambda v, xp: getattr(xp, fn)(arg(v, xp))
    if isinstance(node, ast.Call):
        called = node.func.id if isinstance(node.func, ast.Name) else None
        raise ValueError(f"got {text!r}; calling {repr(called) if called else 'an expression'}"
                         " is not"
                         f" allowed; expected one of the functions {list(FUNCTIONS)} with one"
                         " argument")
    raise _refused(node, text)


@dataclass(frozen=True, eq=False)
class NonlinearConstraint:
    """``expression op rhs`` in user units, op <= or >=, as ``g(values) <= 0``.

    g is ``(lhs - rhs) / scale`` (or its negative for >=), scale = max(1, |rhs|),
    so that one tolerance (1e-9) means the same relative accuracy as for linear
    constraints. names: the parameters it reads.
    """

    text: str
    names: tuple[str, ...]
    op: str
    rhs: float
    lhs: Expression

    def g(self, values: dict, xp: Any = None) -> Any:
        """The constraint function on arrays of user values: feasible where <= 0."""
        import numpy as np

        xp = np if xp is None else xp
        sign = 1.0 if self.op == "<=" else -1.0
        return sign * (self.lhs(values, xp) - self.rhs) / max(1.0, abs(self.rhs))


def parse_constraint(text: str, names: list[str]) -> LinearConstraint | NonlinearConstraint:
    """Parse a parameter constraint: linear when it is, else nonlinear (``<=`` or ``>=``).

    Raises ValueError naming the construct that is not allowed (``__import__``,
    attributes, calls of unknown functions, ``x ** y``) or the unknown name.
    """
    try:
        return parse_linear_constraint(text, names)
    except ValueError as e:
        if "not linear" not in str(e) and "expected a linear expression" not in str(e):
            raise
    left, op, right = _comparison(text)
    used: set[str] = set()
    lhs = _compile(left, text, names, used)
    rhs = _compile(right, text, names, used)
    if op == "==":
        raise ValueError(f"got {text!r}; a nonlinear equality leaves a set of zero volume that"
                         " no design or optimiser can sample; expected <= or >= (or a linear"
                         " equality)")
    ordered = tuple(n for n in names if n in used)
    # A number on one side is the bound, which sets the constraint's scale.
    if _number(right) is not None:
        return NonlinearConstraint(text.strip(), ordered, op, _number(right), lhs)
    if _number(left) is not None:
        return NonlinearConstraint(text.strip(), ordered, "<=" if op == ">=" else ">=",
                                   _number(left), rhs)
    return NonlinearConstraint(text.strip(), ordered, op, 0.0,
                               lambda v, xp: lhs(v, xp) - rhs(v, xp))


# -- cardinality ---------------------------------------------------------------------


class NChooseK(BaseModel):
    """At least ``min_count`` and at most ``max_count`` of ``parameters`` present.

    A parameter is present when its value is nonzero; each must be continuous or
    integer with ``low == 0`` (absent means exactly 0). The formulation constraint
    "at most 3 of these 8 ingredients": ``NChooseK([...], max_count=3)``. In YAML,
    an entry of ``constraints:`` such as ``{nchoosek: {parameters: [a, b, c],
    max_count: 2, min_count: 1}}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: list[str] = Field(min_length=1, max_length=1000)
    max_count: int = Field(ge=0)
    min_count: int = Field(default=0, ge=0)

    def __init__(self, parameters: Any = None, /, **kw: Any):
        if parameters is not None:
            kw["parameters"] = parameters
        super().__init__(**kw)

    @model_validator(mode="after")
    def _counts(self) -> "NChooseK":
        if len(set(self.parameters)) != len(self.parameters):
            raise ValueError(f"parameters: got {self.parameters}; expected distinct names")
        if self.min_count > self.max_count:
            raise ValueError(f"min_count: got {self.min_count} with max_count"
                             f" {self.max_count}; expected min_count <= max_count")
        if self.min_count > len(self.parameters):
            raise ValueError(f"min_count: got {self.min_count} for {len(self.parameters)}"
                             " parameters; expected at most their number")
        return self

    def count(self, rows: list[dict]) -> list[int]:
        """How many of the parameters are present (nonzero) in each row."""
        return [sum(1 for n in self.parameters if float(r[n]) != 0.0) for r in rows]


class NChooseKSpec(BaseModel):
    """The YAML form of a cardinality constraint: ``{nchoosek: {...}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nchoosek: NChooseK


class FunctionConstraint(BaseModel):
    """A Python constraint ``g(params) <= 0``, recorded as its ``module:qualname``.

    From Python the function itself is kept (so a lambda works in memory); a spec
    read from a file or a store imports it by that reference when the campaign is
    built (never when a spec is only validated).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: str = Field(pattern=r"^[\w.]+:[\w.<>]+$")
    _fn: Callable | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, fn: Callable) -> "FunctionConstraint":
        """The reference of a callable, which it keeps."""
        ref = f"{getattr(fn, '__module__', None) or '__main__'}:" \
              f"{getattr(fn, '__qualname__', None) or type(fn).__qualname__}"
        out = cls(function=ref.replace(" ", ""))
        out._fn = fn
        return out

    def resolve(self) -> Callable:
        """The function: the one given, or imported from ``module:qualname``."""
        if self._fn is not None:
            return self._fn
        module, _, qualname = self.function.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"function: got {self.function!r}, which cannot be imported ({e});"
                             " expected an importable module:function (a lambda or a local"
                             " function lives only in the process that defined it)") from None
        if not callable(obj):
            raise ValueError(f"function: got {self.function!r}, which is not callable")
        self._fn = obj
        return obj


__all__ = ["FUNCTIONS", "FunctionConstraint", "LinearConstraint", "NChooseK", "NChooseKSpec",
           "NonlinearConstraint", "OutcomeConstraint", "parse_constraint",
           "parse_linear_constraint", "parse_outcome_constraint"]
