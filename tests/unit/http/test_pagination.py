"""Paginators are pure: ``first()`` and ``next(step, body, count, headers)``, no I/O."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from inflow.http.pagination import (
    Cursor,
    LinkHeader,
    NextUrl,
    Offset,
    PageNumber,
    Paginator,
    SinglePage,
    Step,
    dig,
)

NO_HEADERS = httpx.Headers()

BODY = {
    "data": [{"id": 1}, {"id": 2}],
    "meta": {"next": "abc", "total": 3, "pages": [{"href": "/p2"}]},
    "zero": 0,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("", BODY, id="empty-path-is-the-body"),
        pytest.param("zero", 0, id="top-level-falsy-value"),
        pytest.param("meta.next", "abc", id="nested-dict"),
        pytest.param("data.1.id", 2, id="list-index"),
        pytest.param("meta.pages.0.href", "/p2", id="dict-list-dict"),
        pytest.param("data.2.id", None, id="list-index-out-of-range"),
        pytest.param("data.first", None, id="list-with-a-name"),
        pytest.param("meta.missing.deeper", None, id="missing-key"),
        pytest.param("meta.next.deeper", None, id="through-a-scalar"),
    ],
)
def test_dig_reads_dotted_paths(path: str, expected: Any) -> None:
    assert dig(BODY, path) == expected


@pytest.mark.parametrize(
    ("body", "path"),
    [
        pytest.param(None, "a", id="null-body"),
        pytest.param([1, 2], "a", id="list-body-named-part"),
        pytest.param("text", "a", id="string-body"),
    ],
)
def test_dig_on_non_objects_is_none(body: Any, path: str) -> None:
    assert dig(body, path) is None


# ------------------------------------------------------------------ first steps


@pytest.mark.parametrize(
    ("paginator", "expected"),
    [
        pytest.param(SinglePage(), Step(), id="single-page"),
        pytest.param(PageNumber(), Step({"page": 1, "per_page": 100}), id="page-number"),
        pytest.param(
            PageNumber(param="p", size_param=None, start=0),
            Step({"p": 0}),
            id="page-number-no-size",
        ),
        pytest.param(Offset(limit=50), Step({"offset": 0, "limit": 50}), id="offset"),
        pytest.param(Cursor("next", "cursor"), Step({}), id="cursor-no-size"),
        pytest.param(
            Cursor("next", "cursor", size_param="count", size=25),
            Step({"count": 25}),
            id="cursor-with-size",
        ),
        pytest.param(NextUrl("links.next"), Step({}), id="next-url-no-size"),
        pytest.param(
            NextUrl("links.next", size_param="limit", size=10),
            Step({"limit": 10}),
            id="next-url-with-size",
        ),
        pytest.param(LinkHeader(), Step({}), id="link-header-no-size"),
        pytest.param(
            LinkHeader(size_param="per_page", size=100), Step({"per_page": 100}), id="link-header"
        ),
    ],
)
def test_paginator_first_step(paginator: Paginator, expected: Step) -> None:
    step = paginator.first()
    assert step == expected
    assert step.url is None
    assert step.page == 1


# ------------------------------------------------------------------ next steps


def test_single_page_stops_after_one_page() -> None:
    assert SinglePage().next(Step(), {"data": [1]}, 1, NO_HEADERS) is None


@pytest.mark.parametrize(
    ("paginator", "page", "body", "count", "expected"),
    [
        pytest.param(PageNumber(size=2), 1, {}, 2, {"page": 2, "per_page": 2}, id="full-page"),
        pytest.param(PageNumber(size=2), 3, {}, 2, {"page": 4, "per_page": 2}, id="third-page"),
        pytest.param(
            PageNumber(size=2, start=0), 1, {}, 2, {"page": 1, "per_page": 2}, id="zero-based"
        ),
        pytest.param(PageNumber(size=2), 1, {}, 1, None, id="short-page"),
        pytest.param(PageNumber(size=2), 1, {}, 0, None, id="empty-page"),
        pytest.param(
            PageNumber(size=2, total_path="meta.total"),
            2,
            {"meta": {"total": 4}},
            2,
            None,
            id="total-reached",
        ),
        pytest.param(
            PageNumber(size=2, total_path="meta.total"),
            1,
            {"meta": {"total": "5"}},
            2,
            {"page": 2, "per_page": 2},
            id="total-as-text-not-reached",
        ),
        pytest.param(
            PageNumber(size=2, total_path="meta.total"),
            2,
            {"meta": {"total": "unknown"}},
            2,
            {"page": 3, "per_page": 2},
            id="total-not-a-number-is-ignored",
        ),
        pytest.param(
            PageNumber(size=2, total_path="meta.total"),
            2,
            {"meta": {"total": {"value": 4}}},
            2,
            {"page": 3, "per_page": 2},
            id="total-an-object-is-ignored",
        ),
        pytest.param(
            PageNumber(size=2, total_path="meta.total"),
            2,
            {},
            2,
            {"page": 3, "per_page": 2},
            id="total-missing",
        ),
    ],
)
def test_page_number_next(
    paginator: PageNumber, page: int, body: Any, count: int, expected: dict[str, Any] | None
) -> None:
    step = paginator.next(Step(page=page), body, count, NO_HEADERS)
    if expected is None:
        assert step is None
    else:
        assert step == Step(params=expected, page=page + 1)


@pytest.mark.parametrize(
    ("paginator", "offset", "body", "count", "expected"),
    [
        pytest.param(Offset(limit=2), 0, {}, 2, 2, id="full-page"),
        pytest.param(Offset(limit=2), 4, {}, 2, 6, id="later-page"),
        pytest.param(Offset(limit=2), 0, {}, 1, None, id="short-page"),
        pytest.param(Offset(limit=2), 2, {}, 0, None, id="empty-page"),
        pytest.param(Offset(limit=2, total_path="total"), 2, {"total": 4}, 2, None, id="total"),
        pytest.param(
            Offset(limit=2, total_path="total"), 0, {"total": 5}, 2, 2, id="total-not-reached"
        ),
    ],
)
def test_offset_next(
    paginator: Offset, offset: int, body: Any, count: int, expected: int | None
) -> None:
    step = paginator.next(Step({"offset": offset, "limit": 2}, page=3), body, count, NO_HEADERS)
    if expected is None:
        assert step is None
    else:
        assert step == Step(params={"offset": expected, "limit": 2}, page=4)


def test_offset_next_from_a_step_without_offset() -> None:
    step = Offset(param="skip", limit_param="top", limit=3).next(Step(), {}, 3, NO_HEADERS)
    assert step == Step(params={"skip": 3, "top": 3}, page=2)


@pytest.mark.parametrize(
    ("paginator", "body", "expected"),
    [
        pytest.param(
            Cursor("meta.next", "cursor"), {"meta": {"next": "abc"}}, {"cursor": "abc"}, id="token"
        ),
        pytest.param(Cursor("next", "after"), {"next": 42}, {"after": "42"}, id="number-as-text"),
        pytest.param(
            Cursor("next", "after", size_param="limit", size=10),
            {"next": "t2"},
            {"limit": 10, "after": "t2"},
            id="token-with-size",
        ),
        pytest.param(Cursor("meta.next", "cursor"), {"meta": {"next": ""}}, None, id="empty"),
        pytest.param(Cursor("meta.next", "cursor"), {"meta": {"next": None}}, None, id="null"),
        pytest.param(Cursor("meta.next", "cursor"), {"meta": {}}, None, id="missing"),
    ],
)
def test_cursor_next(paginator: Cursor, body: Any, expected: dict[str, Any] | None) -> None:
    step = paginator.next(Step(page=2), body, 10, NO_HEADERS)
    if expected is None:
        assert step is None
    else:
        assert step == Step(params=expected, page=3)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"links": {"next": "https://api.example.com/v1/items?page=2"}},
            "https://api.example.com/v1/items?page=2",
            id="absolute",
        ),
        pytest.param(
            {"links": {"next": "/v1/items?cursor=xyz"}},
            "/v1/items?cursor=xyz",
            id="relative-kept-as-given",
        ),
        pytest.param({"links": {"next": None}}, None, id="null"),
        pytest.param({"links": {"next": ""}}, None, id="empty"),
        pytest.param({"links": {}}, None, id="missing"),
        pytest.param({"links": {"next": {"href": "/x"}}}, None, id="not-a-string"),
    ],
)
def test_next_url_next(body: Any, expected: str | None) -> None:
    step = NextUrl("links.next", size_param="limit", size=10).next(
        Step({"limit": 10}), body, 10, NO_HEADERS
    )
    if expected is None:
        assert step is None
    else:
        assert step == Step(url=expected, page=2)
        assert step.params == {}  # the next URL carries everything


GITHUB_LINK = (
    '<https://api.github.com/repos/o/r/issues?page=1>; rel="prev", '
    '<https://api.github.com/repos/o/r/issues?page=3>; rel="next", '
    '<https://api.github.com/repos/o/r/issues?page=5>; rel="last", '
    '<https://api.github.com/repos/o/r/issues?page=1>; rel="first"'
)


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        pytest.param(
            GITHUB_LINK, "https://api.github.com/repos/o/r/issues?page=3", id="several-rels"
        ),
        pytest.param(
            '<https://h/x?page=1>; rel="prev", <https://h/x?page=9>; rel="last"',
            None,
            id="no-next-among-several",
        ),
        pytest.param("<https://h/x?page=2>; rel=next", "https://h/x?page=2", id="unquoted"),
        pytest.param('<https://h/x?page=2> ; REL = "Next"', "https://h/x?page=2", id="case"),
        pytest.param(
            '<https://h/x?page=2>; rel="next last"', "https://h/x?page=2", id="two-types-in-one"
        ),
        pytest.param(
            '<https://h/x?page=1>; title="first page"; rel="prev", '
            '<https://h/x?fields=a,b&page=2>; title="x"; rel="next"',
            "https://h/x?fields=a,b&page=2",
            id="comma-in-url-and-params",
        ),
        pytest.param('</x?page=2>; rel="next"', "/x?page=2", id="relative-kept-as-given"),
        pytest.param('<https://h/x?page=2>; rel="nextpage"', None, id="other-rel-name"),
        pytest.param('<https://h/x?page=2>; rel=""', None, id="empty-rel"),
        pytest.param("<https://h/x?page=2>", None, id="no-rel"),
        pytest.param("", None, id="empty-header"),
    ],
)
def test_link_header_next(link: str, expected: str | None) -> None:
    step = LinkHeader().next(Step(page=4), [], 30, httpx.Headers({"Link": link}))
    if expected is None:
        assert step is None
    else:
        assert step == Step(url=expected, page=5)


def test_link_header_next_without_a_link_header() -> None:
    assert LinkHeader().next(Step(), [], 30, {}) is None
