"""What a provider answered that a connector could not read: which request, and where in it.

A provider may answer 200 with a body of another shape than the one a connector reads: a
``null`` in a list, a missing field, a number where a string belongs, an empty list. The
connector's functions then trip (``KeyError``, ``TypeError`` on a ``None``, ``ValueError`` on a
malformed date). The runtime catches those (``SHAPE_ERRORS``) where it calls a connector and
turns them into one ``UnexpectedResponseError`` through ``unexpected()``: the provider, the
request (method and path, query redacted) and what was unexpected, found by looking at the
body itself (``value[3] is null, expected an object``). None of this runs unless something
went wrong: the bodies are only walked to explain a failure. ``lenient`` keeps a connector's
response hook that cannot read a response from failing the request; ``unusable_parent`` and
``absent`` are the runtime's checks of a parent item and of a page's records field.
"""

from __future__ import annotations

import re
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from inflow.errors import UnexpectedResponseError
from inflow.logging import get_logger

if TYPE_CHECKING:
    import httpx

log = get_logger(__name__)

SHAPE_ERRORS: tuple[type[Exception], ...] = (
    LookupError,
    TypeError,
    AttributeError,
    ValueError,
    ArithmeticError,
)
"""What reading a body of an unexpected shape raises (a connector's real bugs raise these too:
the log line of each conversion names the connector's file and line)."""

MAX_NODES = 200_000  # a body is walked this far to explain a failure, no further

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Answer:
    """One request and what it answered: ``path`` holds the redacted query; ``records`` is the
    dotted path of the items in the body (item paths are written below it)."""

    method: str
    path: str
    body: Any = None
    records: str = ""


def json_type(value: Any) -> str:
    """A JSON value's type as a user reads it (``null``, ``a string``, ``an object``…)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


_PY_TYPES = {
    "NoneType": "null",
    "bool": "a boolean",
    "int": "a number",
    "float": "a number",
    "str": "a string",
    "list": "a list",
    "dict": "an object",
}
_QUOTED_TYPE = re.compile(
    r"'(NoneType|bool|int|float|str|list|dict)'|not (NoneType|bool|int|float|str|list|dict)\b"
)
_MUST_BE = re.compile(r"must be (str|int|float|a real number|a string)")
_EXPECTED = re.compile(r"expected (an? [a-z ]+?)$")
_QUOTED_VALUE = re.compile(r"""['"]([^'"]{1,200})['"]\s*$""")
_STRING_LITERAL = re.compile(r"""["']([A-Za-z_@$][\w@.$:-]{0,80})["']""")
_WANTS = (  # what an operation needs, said by the exception: the expected type
    ("not iterable", "a list"),
    ("has no len()", "a list"),
    ("attribute 'get'", "an object"),
    ("attribute 'items'", "an object"),
    ("attribute 'keys'", "an object"),
    ("attribute 'lower'", "a string"),
    ("attribute 'upper'", "a string"),
    ("attribute 'strip'", "a string"),
    ("attribute 'split'", "a string"),
    ("attribute 'startswith'", "a string"),
    ("attribute 'replace'", "a string"),
    ("not subscriptable", "an object"),
    ("list indices must be", "an object"),
    ("must be a string or a", "a number"),
    ("must be real number", "a number"),
)


def render_path(path: Path, prefix: str = "") -> str:
    """``("value", 3, "id")`` → ``value[3].id`` (below ``prefix``, a records path)."""
    out = prefix
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class _Node:
    path: Path
    shape: tuple[str | None, ...]  # the path with list indices left out: siblings share it
    value: Any


def _walk(body: Any) -> list[_Node]:
    nodes: list[_Node] = []
    stack: list[tuple[Path, tuple[str | None, ...], Any]] = [((), (), body)]
    while stack and len(nodes) < MAX_NODES:
        path, shape, value = stack.pop()
        nodes.append(_Node(path, shape, value))
        if isinstance(value, Mapping):
            children = [((*path, k), (*shape, str(k)), v) for k, v in value.items()]
        elif isinstance(value, list):
            children = [((*path, i), (*shape, None), v) for i, v in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))
    return nodes


def _hints(exc: BaseException) -> set[str]:
    """The string literals on the line that raised (``item["id"]`` → ``id``): the keys the
    connector was reading when it failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    words: set[str] = set()
    for frame in frames[-2:]:
        words.update(_STRING_LITERAL.findall(frame.line or ""))
    return words


def where(exc: BaseException) -> str:
    """``file.py:123 function``: the code that raised (for the log, never the user)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} {last.name}"


class _Shapes:
    """Each node's siblings (same path but for list indices) and their types."""

    def __init__(self, nodes: Sequence[_Node]) -> None:
        self.types: dict[tuple[str | None, ...], Counter[str]] = {}
        self.keys: dict[tuple[str | None, ...], Counter[str]] = {}
        self.objects: Counter[tuple[str | None, ...]] = Counter()
        for node in nodes:
            self.types.setdefault(node.shape, Counter())[json_type(node.value)] += 1
            if isinstance(node.value, Mapping):
                self.objects[node.shape] += 1
                self.keys.setdefault(node.shape, Counter()).update(str(k) for k in node.value)

    def rarity(self, node: _Node) -> float:
        """How unlike its siblings a node's type is: 0 (all alike) to 1 (the only one)."""
        counts = self.types[node.shape]
        total = sum(counts.values())
        return 0.0 if total < 2 else 1 - counts[json_type(node.value)] / total

    def expected(self, node: _Node) -> str | None:
        """The type its siblings mostly have (when it differs from its own)."""
        counts = self.types[node.shape]
        own = json_type(node.value)
        others = [(n, t) for t, n in counts.items() if t != own]
        return max(others)[1] if others and self.rarity(node) > 0.5 else None


@dataclass(frozen=True)
class Finding:
    """What was unexpected (``text``); ``sure``: the body itself shows it (not a guess)."""

    text: str
    sure: bool = True


def describe(body: Any, exc: BaseException, *, prefix: str = "", within: Path = ()) -> Finding:
    """What in ``body`` made ``exc`` happen, as a user reads it (a best effort).

    The exception says what kind of value the connector tripped over (a missing key, a null, a
    string it could not parse); the body's siblings say what was expected there: an item of a
    list is compared with the other items, a field with the same field of the other items.

    Args:
        prefix: the dotted path ``body`` sits at in the whole answer (a page's records).
        within: only nodes below this path are candidates (one item of a page); the others
            still serve as its siblings.
    """
    nodes = _walk(body)
    shapes = _Shapes(nodes)
    hints = _hints(exc)
    text = str(exc)
    candidates = [n for n in nodes if n.path[: len(within)] == within]

    def at(node: _Node) -> str:
        return render_path(node.path, prefix) or "the body"

    def score(node: _Node) -> tuple[float, int, int]:
        key = node.path[-1] if node.path else None
        return (shapes.rarity(node), int(isinstance(key, str) and key in hints), -len(node.path))

    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        key = exc.args[0]
        lacking = [n for n in candidates if isinstance(n.value, Mapping) and key not in n.value]
        if lacking:
            best = max(lacking, key=lambda n: (shapes.keys[n.shape][key], -len(n.path)))
            sure = shapes.keys[best.shape][key] > 0 or key in hints
            return Finding(f"{at(best)} has no {key!r}", sure)
    if isinstance(exc, KeyError) and exc.args:  # a value of the body used as a key
        key = exc.args[0]
        known = [n for n in candidates if n.path and n.value == key and type(n.value) is type(key)]
        if known:
            shown = "null" if key is None else repr(key)
            return Finding(f"{at(known[0])} is {shown}, a value the connector does not know")
    if isinstance(exc, IndexError):
        empty = [n for n in candidates if isinstance(n.value, list) and not n.value]
        if empty:
            return Finding(f"{at(max(empty, key=score))} is an empty list")
    said_wanted = _EXPECTED.search(text)
    wanted = said_wanted.group(1) if said_wanted else None
    wanted = wanted or next((t for phrase, t in _WANTS if phrase in text), None)
    named = {_PY_TYPES[a or b] for a, b in _QUOTED_TYPE.findall(text)}
    if "list indices must be" in text:
        named.add("a list")
    must = _MUST_BE.search(text)
    if must and wanted is None:
        wanted = "a string" if must.group(1) in ("str", "a string") else "a number"
    if isinstance(exc, TypeError | AttributeError) and named:
        typed = [n for n in candidates if json_type(n.value) in named]
        if wanted is not None:
            typed = [n for n in typed if json_type(n.value) != wanted] or typed
        strong = [n for n in typed if score(n)[0] > 0 or score(n)[1]]  # not a mere guess
        # else the item (or the body) itself, when it is of the type the code tripped over
        typed = strong or [n for n in typed if n.path == within]
        if typed:
            odd_one = max(typed, key=score)
            expected = shapes.expected(odd_one) or wanted
            said = f"{at(odd_one)} is {json_type(odd_one.value)}"
            return Finding(f"{said}, expected {expected}" if expected else said)
    literal = _QUOTED_VALUE.search(text)
    if isinstance(exc, ValueError | ArithmeticError) and literal:
        shown = literal.group(1)
        matching = [n for n in candidates if isinstance(n.value, str) and n.value == shown]
        matching = matching or [n for n in candidates if str(n.value) == shown]
        if matching:
            best = max(matching, key=score)
            return Finding(f"{at(best)} is {_show(best.value)}, which the connector cannot read")
    odd = [n for n in candidates if shapes.expected(n)]
    if odd:
        best = max(odd, key=score)
        return Finding(
            f"{at(best)} is {json_type(best.value)}, expected {shapes.expected(best)}", False
        )
    if within:
        return Finding(f"{render_path(within, prefix)} could not be read ({_gist(exc)})", False)
    if not isinstance(body, Mapping | list):
        said = f"the body is {json_type(body)}"
        return Finding(f"{said}, expected {wanted}" if wanted else said, False)
    return Finding(f"it could not be read ({_gist(exc)})", False)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _gist(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        return f"no field {exc.args[0]!r}"
    return str(exc)[:200] or type(exc).__name__


def unexpected(
    provider: str,
    slug: str,
    answer: Answer | None,
    exc: BaseException,
    *,
    problem: str | None = None,
    item: int | None = None,
    items: Sequence[Any] | None = None,
) -> UnexpectedResponseError:
    """The error for ``exc`` raised while reading ``answer`` (or one of its items).

    ``item``/``items``: the failure concerns ``items[item]`` (one item of a page, or of a
    window's pages), described against the other items.
    """
    if problem is None:
        if item is not None and items is not None:
            prefix = answer.records if answer else ""
            problem = describe(list(items), exc, prefix=prefix, within=(item,)).text
        else:
            problem = describe(answer.body if answer else None, exc).text
    what = "an unexpected item" if item is not None else "an unexpected body"
    request = f"{answer.method} {answer.path}" if answer else "a request"
    error = UnexpectedResponseError(
        f"{provider} answered {request} with {what}: {problem}",
        problem=problem,
        provider=provider,
        slug=slug,
        method=answer.method if answer else None,
        url=answer.path if answer else None,
    )
    error.__cause__ = exc
    return error


_Out = TypeVar("_Out")


def lenient(
    hook: Callable[[httpx.Response], _Out] | None,
) -> Callable[[httpx.Response], _Out | None] | None:
    """A connector's response hook (``classify``, ``pace``, ``reset_after``) that cannot read a
    response has no opinion on it: the generic rules apply (and the log says where it failed)."""
    if hook is None:
        return None

    def call(response: httpx.Response) -> _Out | None:
        try:
            return hook(response)
        except SHAPE_ERRORS as exc:
            log.warning(
                "a connector could not read a response; generic rules apply",
                status=response.status_code,
                error=type(exc).__name__,
                code=where(exc),
            )
            return None

    return call


def unusable_parent(item: Any, keys: Sequence[str]) -> Exception | None:
    """Why a parent item cannot fill its child's ``{parent.x}`` (as the error reading it
    would be), or None."""
    if not isinstance(item, Mapping):
        return TypeError(f"'{type(item).__name__}' object is not subscriptable")
    for key in keys:
        value = item.get(key)
        if key not in item:
            return KeyError(key)
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            return TypeError(f"'{type(value).__name__}' object is not a key")
    return None


def absent(body: Any, path: str) -> bool:
    """Whether a dotted path is missing from a body (not merely null)."""
    node = body
    for part in path.split("."):
        if isinstance(node, Mapping):
            if part not in node:
                return True
            node = node[part]
        elif isinstance(node, list) and part.isdigit():
            if int(part) >= len(node):
                return True
            node = node[int(part)]
        else:
            return True
    return False
