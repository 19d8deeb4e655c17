"""Feature formulas written once, run by two engines: rendered to SQL, or evaluated over NumPy columns.

The batch feature job is one DuckDB statement (`features.compute`); the live path computes a handful of
customers per event and cannot pay DuckDB's fixed planning cost (~30 ms) each time. So each formula is an
`Expr`: `sql()` renders it into the batch statement, `evaluate(env)` runs it over arrays named like its
columns. There is no second copy of any formula to drift.

NumPy side conventions (they mirror SQL's): a NULL is NaN (numbers and timestamps are float64; timestamps in
microseconds since the epoch, intervals in microseconds), text is an object array with None for NULL, a
comparison with a NULL is false (as `CASE WHEN NULL` is), `greatest` ignores NULLs (as DuckDB's does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_US_PER_S = 1_000_000.0
Env = Mapping[str, np.ndarray]
Fn = Callable[[Env], np.ndarray]


def _lift(value: Any) -> Expr:
    return value if isinstance(value, Expr) else Lit(value)


class Expr:
    """A scalar formula over named columns."""

    def sql(self) -> str:
        raise NotImplementedError

    def compile(self) -> Fn:
        """The formula as a NumPy function of the env, its dispatch resolved once (the live path evaluates
        ~90 formulas per event: per-node dispatch would cost more than the arithmetic)."""
        raise NotImplementedError

    @functools.cached_property
    def fn(self) -> Fn:
        """`compile()`, once per expression."""
        return self.compile()

    def evaluate(self, env: Env) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.fn(env)

    def _op(self, op: str, other: Any, swap: bool = False) -> Expr:
        a, b = (_lift(other), self) if swap else (self, _lift(other))
        return BinOp(op, a, b)

    def __add__(self, o: Any) -> Expr:
        return self._op("+", o)

    def __radd__(self, o: Any) -> Expr:
        return self._op("+", o, swap=True)

    def __sub__(self, o: Any) -> Expr:
        return self._op("-", o)

    def __rsub__(self, o: Any) -> Expr:
        return self._op("-", o, swap=True)

    def __mul__(self, o: Any) -> Expr:
        return self._op("*", o)

    def __rmul__(self, o: Any) -> Expr:
        return self._op("*", o, swap=True)

    def __truediv__(self, o: Any) -> Expr:
        return self._op("/", o)

    def __rtruediv__(self, o: Any) -> Expr:
        return self._op("/", o, swap=True)

    def __ge__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._op(">=", o)

    def __gt__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._op(">", o)

    def __le__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._op("<=", o)

    def __lt__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._op("<", o)

    def eq(self, o: Any) -> Expr:
        """SQL `=` (``==`` stays Python identity so expressions can sit in sets and dicts)."""
        return self._op("=", o)

    def __and__(self, o: Any) -> Expr:
        return self._op("AND", o)


def _const(value: np.ndarray) -> Fn:
    return lambda env: value


@dataclass(frozen=True, eq=False)
class Col(Expr):
    """A column, e.g. ``Col("b.c_events")``; NumPy looks it up in the env by the same name."""

    name: str

    def sql(self) -> str:
        return self.name

    def compile(self) -> Fn:
        name = self.name
        return lambda env: env[name]


@dataclass(frozen=True, eq=False)
class Lit(Expr):
    value: Any

    def sql(self) -> str:
        if isinstance(self.value, str):
            return "'" + self.value.replace("'", "''") + "'"
        if isinstance(self.value, float):
            return repr(self.value)
        return str(self.value)

    def compile(self) -> Fn:
        return _const(np.asarray(self.value, dtype=float if isinstance(self.value, int | float) else object))


@dataclass(frozen=True, eq=False)
class Minutes(Expr):
    """An interval literal (`INTERVAL n MINUTE`); microseconds in NumPy."""

    minutes: int

    def sql(self) -> str:
        return f"INTERVAL {self.minutes} MINUTE"

    def compile(self) -> Fn:
        return _const(np.asarray(self.minutes * 60 * _US_PER_S))


_COMPARE = {"=": np.equal, ">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


@dataclass(frozen=True)
class Coded:
    """A text column as dictionary codes (-1: NULL) into its few distinct `values`: comparisons run over the
    values and are looked up by code, not once per row on Python strings."""

    codes: np.ndarray
    values: np.ndarray  # object array of str

    def lookup(self, per_value: np.ndarray) -> np.ndarray:
        """A per-value boolean result spread to the rows (False for NULL)."""
        return np.append(np.asarray(per_value, dtype=bool), False)[self.codes]


def _compare(op: str, a: Any, b: Any) -> np.ndarray:
    if isinstance(a, Coded):
        return a.lookup(_compare(op, a.values, b))
    if isinstance(b, Coded):
        return b.lookup(_compare(op, a, b.values))
    if a.dtype == object or b.dtype == object:  # text: NULL (None) compares false
        if op != "=":
            raise NotImplementedError(f"text comparison {op}")
        return np.not_equal(a, None) & np.not_equal(b, None) & np.equal(a, b)
    return _COMPARE[op](a, b)


def _float(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class BinOp(Expr):
    op: str
    a: Expr
    b: Expr

    def sql(self) -> str:
        return f"({self.a.sql()} {self.op} {self.b.sql()})"

    def compile(self) -> Fn:
        fa, fb, op = self.a.compile(), self.b.compile(), self.op
        if op == "AND":
            return lambda env: np.asarray(fa(env), dtype=bool) & np.asarray(fb(env), dtype=bool)
        if op in _COMPARE:
            return lambda env: _compare(op, fa(env), fb(env))
        ufunc = _ARITH[op]
        return lambda env: ufunc(_float(fa(env)), _float(fb(env)))


@dataclass(frozen=True, eq=False)
class Func(Expr):
    """A SQL function both engines know: coalesce, nullif, greatest, epoch, floor, CAST, IN, CASE."""

    name: str
    args: tuple[Any, ...]

    def sql(self) -> str:
        args = [_lift(a) for a in self.args]
        match self.name:
            case "cast_bigint" | "cast_double":
                return f"CAST({args[0].sql()} AS {self.name.removeprefix('cast_').upper()})"
            case "in":
                return f"({args[0].sql()} IN ({', '.join(a.sql() for a in args[1:])}))"
            case "case":
                tail = f" ELSE {args[2].sql()}" if len(args) > 2 else ""
                return f"CASE WHEN {args[0].sql()} THEN {args[1].sql()}{tail} END"
            case _:
                return f"{self.name}({', '.join(a.sql() for a in args)})"

    def compile(self) -> Fn:
        f = [_lift(a).compile() for a in self.args]
        match self.name:
            case "coalesce":
                x, d = f
                return lambda env: _coalesce(_float(x(env)), d(env))
            case "nullif":
                x, v = f
                return lambda env: _nullif(_float(x(env)), v(env))
            case "greatest":  # DuckDB's ignores NULLs
                a, b = f
                return lambda env: np.fmax(_float(a(env)), _float(b(env)))
            case "epoch":
                (x,) = f
                return lambda env: _float(x(env)) / _US_PER_S
            case "floor":
                (x,) = f
                return lambda env: np.floor(_float(x(env)))
            case "cast_double":
                (x,) = f
                return lambda env: _float(x(env))
            case "cast_bigint":  # DuckDB casts DOUBLE to BIGINT half to even, as rint; NULL stays NaN
                (x,) = f
                return lambda env: np.rint(_float(x(env)))
            case "in":
                x, values = f[0], list(self.args[1:])
                return lambda env: _isin(x(env), values)
            case "case":
                cond, then = f[0], f[1]
                other = f[2] if len(f) > 2 else _const(np.asarray(np.nan))
                return lambda env: np.where(np.asarray(cond(env), dtype=bool), then(env), other(env))
        raise NotImplementedError(self.name)


def _coalesce(x: np.ndarray, default: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), default, x)


def _nullif(x: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.where(x == value, np.nan, x)


def _isin(x: Any, values: list[Any]) -> np.ndarray:
    if isinstance(x, Coded):
        return x.lookup(_isin(x.values, values))
    return np.not_equal(x, None) & np.isin(x, values)


def col(name: str) -> Col:
    return Col(name)


def coalesce(x: Expr, default: Any) -> Expr:
    return Func("coalesce", (x, default))


def nullif(x: Expr, value: Any) -> Expr:
    return Func("nullif", (x, value))


def greatest(a: Any, b: Any) -> Expr:
    return Func("greatest", (a, b))


def epoch(x: Expr) -> Expr:
    """Seconds of an interval (or since the epoch, of a timestamp)."""
    return Func("epoch", (x,))


def floor(x: Expr) -> Expr:
    return Func("floor", (x,))


def bigint(x: Expr) -> Expr:
    return Func("cast_bigint", (x,))


def double(x: Expr) -> Expr:
    return Func("cast_double", (x,))


def isin(x: Expr, values: Sequence[str]) -> Expr:
    return Func("in", (x, *values))


def when(cond: Expr, then: Any, otherwise: Any = None) -> Expr:
    """CASE WHEN cond THEN then [ELSE otherwise] END (NULL when no `otherwise`)."""
    return Func("case", (cond, then) if otherwise is None else (cond, then, otherwise))
