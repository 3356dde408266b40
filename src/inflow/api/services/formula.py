"""Custom metric formulas: arithmetic over metric keys, parsed safely (never ``eval``).

A formula is numbers, metric keys (``clicks``, ``page_views_mobile``), ``+ - * /``, unary
minus and parentheses: ``clicks / impressions``, ``(likes + comments) / followers * 100``.
Python's own parser reads it; any node outside that whitelist (a call, an attribute, ``**``,
a comparison, a string) is refused with a message naming it. Evaluation is total: a missing
operand or a division by zero gives ``None`` (no value for that period), never an exception.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass

MAX_LENGTH = 500
MAX_DEPTH = 40  # nesting of the expression tree; keeps evaluation's recursion shallow

_OPERATORS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}


class FormulaError(ValueError):
    """The text is not a formula of the accepted shape; the message says why."""


@dataclass(frozen=True)
class Formula:
    """A parsed formula: its text, the metric keys it reads, and its tree."""

    text: str
    operands: tuple[str, ...]
    tree: ast.expr

    def evaluate(self, values: Mapping[str, float | None]) -> float | None:
        """The formula's value for ``values`` (by metric key); ``None`` when an operand has
        no value, a division is by zero, or the result is not a finite number."""
        result = _evaluate(self.tree, values)
        return result if result is not None and math.isfinite(result) else None


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return "function calls"
    if isinstance(node, ast.Attribute):
        return "attribute access ('.')"
    if isinstance(node, ast.BinOp):
        symbol = {ast.Pow: "**", ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@"}
        return f"the operator {symbol.get(type(node.op), type(node.op).__name__)!r}"
    if isinstance(node, ast.Constant):
        return f"the literal {node.value!r}"
    return type(node).__name__.lower()


def _check(node: ast.AST, depth: int, operands: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise FormulaError(f"the formula nests deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        _check(node.left, depth + 1, operands)
        _check(node.right, depth + 1, operands)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check(node.operand, depth + 1, operands)
    elif isinstance(node, ast.Name):
        if node.id not in operands:
            operands.append(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise FormulaError(f"the literal {node.value!r} not allowed: use numbers")
        try:
            finite = math.isfinite(float(node.value))
        except OverflowError:
            finite = False
        if not finite:
            raise FormulaError(f"the number {str(node.value)[:20]} is too large")
    else:
        raise FormulaError(
            f"{_describe(node)} not allowed: use metric keys, numbers, + - * / and parentheses"
        )


def parse(text: str) -> Formula:
    """Parse and check ``text``; raises ``FormulaError`` saying what is wrong."""
    source = text.strip()
    if not source:
        raise FormulaError("the formula is empty")
    if len(source) > MAX_LENGTH:
        raise FormulaError(f"the formula is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise FormulaError(f"not a valid formula{where}: {exc.msg}") from exc
    except (RecursionError, MemoryError, ValueError) as exc:
        raise FormulaError("the formula is too deeply nested") from exc
    operands: list[str] = []
    _check(tree.body, 0, operands)
    if not operands:
        raise FormulaError("the formula names no metric")
    return Formula(source, tuple(operands), tree.body)


def _evaluate(node: ast.expr, values: Mapping[str, float | None]) -> float | None:
    if isinstance(node, ast.Constant):
        return float(node.value) if isinstance(node.value, int | float) else None
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, ast.UnaryOp):
        inner = _evaluate(node.operand, values)
        if inner is None:
            return None
        return -inner if isinstance(node.op, ast.USub) else inner
    assert isinstance(node, ast.BinOp)  # noqa: S101 - parse() let nothing else through
    left, right = _evaluate(node.left, values), _evaluate(node.right, values)
    if left is None or right is None:
        return None
    if isinstance(node.op, ast.Add):
        return left + right
    if isinstance(node.op, ast.Sub):
        return left - right
    if isinstance(node.op, ast.Mult):
        return left * right
    return left / right if right != 0 else None


def find_cycle(start: str, formulas: Mapping[str, Formula]) -> list[str] | None:
    """A chain ``start → … → start`` through custom metrics that use each other, if any."""
    path: list[str] = []
    done: set[str] = set()

    def visit(key: str) -> list[str] | None:
        if key in path:
            return [*path[path.index(key) :], key]
        if key in done or key not in formulas:
            return None
        path.append(key)
        for operand in formulas[key].operands:
            cycle = visit(operand)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(key)
        return None

    return visit(start)
