"""Velocity Template Language parser: template text -> a tree of nodes.

Follows Velocity 1.7 (what API Gateway renders mapping templates with), including its
whitespace rules: ``##`` comments eat their newline; the ``)`` closing a directive and the
``#else``/``#end`` keywords eat trailing blanks plus one newline; ``#set`` also eats the blanks
before it, unless plain text precedes them (the lexer then reads the blanks as text).
Backslash escapes of references and directives follow 1.7 too. Identifiers may contain ``-``
and ``_`` as in 1.7. Macros, ``#parse`` and ``#include`` are not supported (API Gateway offers
none of them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from asyncbench.errors import AsyncbenchError

__all__ = [
    "Binary",
    "EscapedReference",
    "Foreach",
    "If",
    "Interpolated",
    "ListLiteral",
    "Literal",
    "MapLiteral",
    "Not",
    "Range",
    "Reference",
    "Set",
    "Stop",
    "TemplateSyntaxError",
    "Text",
    "parse",
]


class TemplateSyntaxError(AsyncbenchError):
    """Raised when a mapping template is not valid VTL; the message gives the position."""


# --- nodes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Access:
    """One step after the base name: ``.name``, ``.name(args)`` or ``[index]``."""

    name: str | None
    args: tuple[Any, ...] | None  # None: a property, not a method call
    index: Any = None  # an expression for ``[index]``


@dataclass(frozen=True, slots=True)
class Reference:
    name: str
    steps: tuple[Access, ...]
    quiet: bool
    source: str  # how it was written: printed as-is when it resolves to null


@dataclass(frozen=True, slots=True)
class EscapedReference:
    """``\\$ref`` (``backslashes`` of them): printed literally when the reference is null;
    else each pair prints one backslash and an odd one makes the reference print as written."""

    backslashes: int
    reference: Reference


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Interpolated:
    """A double-quoted string literal holding references or directives."""

    nodes: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ListLiteral:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class MapLiteral:
    items: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True, slots=True)
class Range:
    start: Any
    end: Any


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True, slots=True)
class Not:
    operand: Any


@dataclass(frozen=True, slots=True)
class Set:
    target: Reference
    value: Any


@dataclass(frozen=True, slots=True)
class If:
    branches: tuple[tuple[Any, tuple[Any, ...]], ...]  # (condition, body); else: condition None


@dataclass(frozen=True, slots=True)
class Foreach:
    variable: str
    iterable: Any
    body: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Stop:
    kind: str  # "break" or "stop"


# --- lexing helpers ----------------------------------------------------------------------

_SPECIAL = re.compile(r"[$#\\]")
_BACKSLASHES = re.compile(r"\\+")
_IDENT = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*")
_DIRECTIVE = re.compile(r"#(?:\{([a-zA-Z]+)\}|([a-zA-Z]+))")
_EAT_NEWLINE = re.compile(r"[ \t]*(?:\r\n|\n|\r)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_WORD_OPERATORS = {"and": "&&", "or": "||", "eq": "==", "ne": "!=", "lt": "<", "gt": ">"}
_WORD_OPERATORS |= {"le": "<=", "ge": ">="}
_SYMBOL_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "+", "-", "*", "/", "%")
_KNOWN_DIRECTIVES = {"set", "if", "elseif", "else", "end", "foreach", "break", "stop"}
_UNSUPPORTED_DIRECTIVES = {"macro", "parse", "include", "define", "evaluate"}


def parse(source: str) -> tuple[Any, ...]:
    """Parse a whole template into its top-level nodes."""
    parser = _Parser(source)
    nodes, closer = parser.block()
    if closer is not None:
        raise parser.error(f"#{closer} without a matching #if or #foreach")
    return nodes


class _Parser:
    def __init__(self, source: str, position: int = 0) -> None:
        self.s = source
        self.i = position

    def error(self, message: str) -> TemplateSyntaxError:
        line = self.s.count("\n", 0, self.i) + 1
        return TemplateSyntaxError(f"mapping template line {line}: {message}")

    # --- template text ---

    def block(self, stop_at_quote: bool = False) -> tuple[tuple[Any, ...], str | None]:
        """Nodes until #else/#elseif/#end (returned as the closer) or the end of the text."""
        nodes: list[Any] = []
        s = self.s
        while self.i < len(s):
            match = _SPECIAL.search(s, self.i)
            end = match.start() if match else len(s)
            if end > self.i:
                nodes.append(Text(s[self.i : end]))
                self.i = end
            if not match:
                break
            if s[end] == "$":
                ref = self.reference()
                nodes.append(ref if ref is not None else Text(self._take_dollar()))
                continue
            if s[end] == "\\":
                self.backslashes(nodes)
                continue
            closer = self.hash(nodes)
            if closer is not None:
                return tuple(_merge_text(nodes)), closer
        return tuple(_merge_text(nodes)), None

    def backslashes(self, nodes: list[Any]) -> None:
        """A run of backslashes: an escape when a reference or directive follows, else text."""
        run = _BACKSLASHES.match(self.s, self.i)
        assert run is not None
        count = len(run.group())
        self.i = run.end()
        if self.s.startswith("$", self.i):
            ref = self.reference()
            if ref is not None:
                nodes.append(EscapedReference(count, ref))
                return
            nodes.append(Text(run.group()))
            return
        directive = _DIRECTIVE.match(self.s, self.i)
        if directive and (directive.group(1) or directive.group(2)) in _KNOWN_DIRECTIVES:
            nodes.append(Text("\\" * (count // 2)))
            if count % 2:  # escaped: the directive's text prints as it is
                nodes.append(Text(directive.group()))
                self.i = directive.end()
            return
        nodes.append(Text(run.group()))

    def _take_dollar(self) -> str:
        text = "$!" if self.s.startswith("$!", self.i) else "$"
        self.i += len(text)
        return text

    def hash(self, nodes: list[Any]) -> str | None:
        """Handle a '#': comment, directive or plain text; returns a block closer if any."""
        s, i = self.s, self.i
        if s.startswith("##", i):
            newline = re.compile(r"\r\n|\n|\r").search(s, i)
            self.i = newline.end() if newline else len(s)
            return None
        if s.startswith("#*", i):
            end = s.find("*#", i + 2)
            if end < 0:
                raise self.error("unclosed #* comment")
            self.i = end + 2
            return None
        if s.startswith("#[[", i):
            end = s.find("]]#", i + 3)
            if end < 0:
                raise self.error("unclosed #[[ block")
            nodes.append(Text(s[i + 3 : end]))
            self.i = end + 3
            return None
        match = _DIRECTIVE.match(s, i)
        name = (match.group(1) or match.group(2)) if match else ""
        if not match or name not in _KNOWN_DIRECTIVES | _UNSUPPORTED_DIRECTIVES:
            nodes.append(Text("#"))
            self.i = i + 1
            return None
        self.i = match.end()
        if name in _UNSUPPORTED_DIRECTIVES:
            raise self.error(f"#{name} is not available in API Gateway mapping templates")
        if name in ("else", "end"):
            self._eat_newline()
            return name
        if name == "elseif":
            return name
        if name in ("break", "stop"):
            nodes.append(Stop(name))
            return None
        if name == "set":
            # Velocity 1.7's #set token includes the blanks before it, but only where the
            # lexer starts a token there: after plain text the blanks belong to that text.
            if nodes and isinstance(nodes[-1], Text) and not nodes[-1].text.strip(" \t"):
                nodes[-1] = Text("")
            nodes.append(self.set_directive())
        elif name == "if":
            nodes.append(self.if_directive())
        else:
            nodes.append(self.foreach_directive())
        return None

    def _eat_newline(self) -> None:
        match = _EAT_NEWLINE.match(self.s, self.i)
        if match:
            self.i = match.end()

    def _open_args(self) -> None:
        self.skip_space()
        self.expect("(")

    def _close_args(self) -> None:
        self.skip_space()
        self.expect(")")
        self._eat_newline()

    def set_directive(self) -> Set:
        self._open_args()
        self.skip_space()
        target = self.reference()
        if target is None:
            raise self.error("#set needs a reference on the left")
        self.skip_space()
        self.expect("=")
        value = self.expression()
        self._close_args()
        return Set(target, value)

    def if_directive(self) -> If:
        branches: list[tuple[Any, tuple[Any, ...]]] = []
        condition: Any = self._condition()
        while True:
            body, closer = self.block()
            branches.append((condition, body))
            if closer == "end":
                return If(tuple(branches))
            if closer == "elseif":
                condition = self._condition()
            elif closer == "else":
                body, closer = self.block()
                branches.append((None, body))
                if closer != "end":
                    raise self.error("#else must be closed by #end")
                return If(tuple(branches))
            else:
                raise self.error("#if without #end")

    def _condition(self) -> Any:
        self._open_args()
        condition = self.expression()
        self._close_args()
        return condition

    def foreach_directive(self) -> Foreach:
        self._open_args()
        self.skip_space()
        variable = self.reference()
        if variable is None or variable.steps:
            raise self.error("#foreach needs a simple $name")
        self.skip_space()
        if not self.s.startswith("in", self.i):
            raise self.error("#foreach needs 'in'")
        self.i += 2
        iterable = self.expression()
        self._close_args()
        body, closer = self.block()
        if closer != "end":
            raise self.error("#foreach without #end")
        return Foreach(variable.name, iterable, body)

    # --- references ---

    def reference(self) -> Reference | None:
        """Parse ``$name``, ``$!name``, ``${name}`` ... at self.i, or return None (not one)."""
        s, start = self.s, self.i
        i = start + 1
        quiet = s.startswith("!", i)
        i += quiet
        braced = s.startswith("{", i)
        i += braced
        match = _IDENT.match(s, i)
        if not match:
            return None
        name = match.group()
        self.i = match.end()
        steps: list[Access] = []
        while self.i < len(s):
            if s[self.i] == "." and (step := _IDENT.match(s, self.i + 1)):
                self.i = step.end()
                if s.startswith("(", self.i):
                    self.i += 1
                    steps.append(Access(step.group(), self.arguments(")")))
                else:
                    steps.append(Access(step.group(), None))
            elif s[self.i] == "[":
                self.i += 1
                index = self.expression()
                self.skip_space()
                self.expect("]")
                steps.append(Access(None, None, index))
            else:
                break
        if braced:
            if not s.startswith("}", self.i):
                self.i = start
                return None
            self.i += 1
        return Reference(name, tuple(steps), quiet, s[start : self.i])

    def arguments(self, closer: str) -> tuple[Any, ...]:
        args: list[Any] = []
        self.skip_space()
        if self.s.startswith(closer, self.i):
            self.i += 1
            return ()
        while True:
            args.append(self.expression())
            self.skip_space()
            if self.s.startswith(",", self.i):
                self.i += 1
                continue
            self.expect(closer)
            return tuple(args)

    # --- expressions ---

    def skip_space(self) -> None:
        s = self.s
        while self.i < len(s) and s[self.i] in " \t\r\n":
            self.i += 1

    def expect(self, text: str) -> None:
        if not self.s.startswith(text, self.i):
            found = self.s[self.i : self.i + 10] or "end of template"
            raise self.error(f"expected {text!r}, found {found!r}")
        self.i += len(text)

    def _operator(self, allowed: tuple[str, ...]) -> str | None:
        self.skip_space()
        s, i = self.s, self.i
        for op in _SYMBOL_OPERATORS:
            if s.startswith(op, i) and op in allowed:
                self.i += len(op)
                return op
        word = _IDENT.match(s, i)
        if word and _WORD_OPERATORS.get(word.group()) in allowed:
            self.i = word.end()
            return _WORD_OPERATORS[word.group()]
        return None

    def expression(self) -> Any:
        return self._binary(0)

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!=", "<", ">", "<=", ">="),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def _binary(self, level: int) -> Any:
        if level == len(self._LEVELS):
            return self._unary()
        left = self._binary(level + 1)
        while (op := self._operator(self._LEVELS[level])) is not None:
            left = Binary(op, left, self._binary(level + 1))
        return left

    def _unary(self) -> Any:
        self.skip_space()
        s = self.s
        if s.startswith("!", self.i) and not s.startswith("!=", self.i):
            self.i += 1
            return Not(self._unary())
        word = _IDENT.match(s, self.i)
        if word and word.group() == "not":
            self.i = word.end()
            return Not(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        self.skip_space()
        s, i = self.s, self.i
        if i >= len(s):
            raise self.error("expression expected, found end of template")
        char = s[i]
        if char == "$":
            ref = self.reference()
            if ref is None:
                raise self.error("invalid reference")
            return ref
        if char in "\"'":
            return self._string(char)
        if char == "(":
            self.i += 1
            value = self.expression()
            self.skip_space()
            self.expect(")")
            return value
        if char == "[":
            return self._list()
        if char == "{":
            return self._map()
        number = _NUMBER.match(s, i)
        if number:
            self.i = number.end()
            text = number.group()
            return Literal(float(text) if number.group(1) else int(text))
        word = _IDENT.match(s, i)
        if word and word.group() in ("true", "false", "null"):
            self.i = word.end()
            return Literal({"true": True, "false": False, "null": None}[word.group()])
        raise self.error(f"unexpected {s[i : i + 10]!r}")

    def _string(self, quote: str) -> Any:
        s = self.s
        i = self.i + 1
        chars: list[str] = []
        while True:
            end = s.find(quote, i)
            if end < 0:
                raise self.error("unclosed string literal")
            chars.append(s[i:end])
            if s.startswith(quote * 2, end):  # a doubled quote stands for one (Velocity 1.7)
                chars.append(quote)
                i = end + 2
                continue
            self.i = end + 1
            break
        text = _unescape_unicode("".join(chars))
        if quote == "'" or ("$" not in text and "#" not in text):
            return Literal(text)
        nodes, closer = _Parser(text).block()
        if closer is not None:
            raise self.error(f"#{closer} inside a string literal")
        return Interpolated(nodes)

    def _list(self) -> Any:
        self.i += 1
        self.skip_space()
        if self.s.startswith("]", self.i):
            self.i += 1
            return ListLiteral(())
        first = self.expression()
        self.skip_space()
        if self.s.startswith("..", self.i):
            self.i += 2
            end = self.expression()
            self.skip_space()
            self.expect("]")
            return Range(first, end)
        items = [first]
        while self.s.startswith(",", self.i):
            self.i += 1
            items.append(self.expression())
            self.skip_space()
        self.expect("]")
        return ListLiteral(tuple(items))

    def _map(self) -> Any:
        self.i += 1
        items: list[tuple[Any, Any]] = []
        self.skip_space()
        if self.s.startswith("}", self.i):
            self.i += 1
            return MapLiteral(())
        while True:
            key = self.expression()
            self.skip_space()
            self.expect(":")
            items.append((key, self.expression()))
            self.skip_space()
            if self.s.startswith(",", self.i):
                self.i += 1
                continue
            self.expect("}")
            return MapLiteral(tuple(items))


def _unescape_unicode(text: str) -> str:
    # Velocity 1.7 string literals understand \uXXXX and nothing else: "\\'" stays three chars.
    if "\\u" not in text:
        return text
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


def _merge_text(nodes: list[Any]) -> list[Any]:
    merged: list[Any] = []
    for node in nodes:
        if isinstance(node, Text) and merged and isinstance(merged[-1], Text):
            merged[-1] = Text(merged[-1].text + node.text)
        elif not (isinstance(node, Text) and not node.text):
            merged.append(node)
    return merged
