"""Custom metric formulas: the safe parser's whitelist, evaluation that never raises, cycles."""

from __future__ import annotations

import pytest

from inflow.api.services.formula import FormulaError, find_cycle, parse


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        pytest.param("clicks / impressions", {"clicks": 3, "impressions": 4}, 0.75, id="ratio"),
        pytest.param("(a + b) * 100 / c", {"a": 1, "b": 2, "c": 4}, 75.0, id="parentheses"),
        pytest.param("a - b * 2", {"a": 10, "b": 3}, 4.0, id="precedence"),
        pytest.param("-a + 1.5", {"a": 1}, 0.5, id="unary_minus_and_float"),
        pytest.param("+a", {"a": 2}, 2.0, id="unary_plus"),
        pytest.param("a / b", {"a": 1, "b": 0}, None, id="division_by_zero"),
        pytest.param("a / (b - b)", {"a": 1, "b": 5}, None, id="zero_denominator_computed"),
        pytest.param("a + b", {"a": 1}, None, id="missing_operand"),
        pytest.param("a + b", {"a": 1, "b": None}, None, id="operand_without_value"),
        pytest.param("a * 1e308 * 10", {"a": 1}, None, id="overflow_is_no_value"),
    ],
)
def test_formula_evaluates(text, values, expected):
    assert parse(text).evaluate(values) == expected


def test_formula_lists_its_operands_once_in_order():
    assert parse("b / a + b * c").operands == ("b", "a", "c")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("__import__('os').system('rm')", "function calls", id="call"),
        pytest.param("a.__class__", "attribute", id="attribute"),
        pytest.param("a ** 2", "'**'", id="power"),
        pytest.param("a % 2", "'%'", id="modulo"),
        pytest.param("a // 2", "'//'", id="floor_division"),
        pytest.param("a if b else c", "ifexp", id="conditional"),
        pytest.param("a < b", "compare", id="comparison"),
        pytest.param("'text'", "'text'", id="string"),
        pytest.param("True + a", "True", id="boolean"),
        pytest.param("[a]", "list", id="list"),
        pytest.param("(a := 1)", "namedexpr", id="walrus"),
        pytest.param("lambda: a", "lambda", id="lambda"),
        pytest.param("a +", "not a valid formula", id="syntax"),
        pytest.param("a; b", "not a valid formula", id="two_statements"),
        pytest.param("", "empty", id="empty"),
        pytest.param("1 + 2", "names no metric", id="no_metric"),
        pytest.param("a" + " + a" * 300, "longer than", id="too_long"),
        pytest.param("(" * 60 + "a" + ")" * 60 + "+" + "-" * 60 + "a", "deeper", id="too_deep"),
        pytest.param("a * " + "9" * 400, "too large", id="huge_number"),
    ],
)
def test_formula_refuses_everything_but_arithmetic(text, words):
    with pytest.raises(FormulaError) as refused:
        parse(text)

    assert words in str(refused.value)


def test_find_cycle_names_the_chain():
    formulas = {"a": parse("b + 1"), "b": parse("c * 2"), "c": parse("a / visits")}

    assert find_cycle("a", formulas) == ["a", "b", "c", "a"]
    assert find_cycle("x", {"x": parse("visits / sessions")}) is None
    assert find_cycle("y", {"y": parse("x + x"), "x": parse("visits")}) is None
