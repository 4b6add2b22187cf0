"""A ClickHouse SQL lexer, faithful to the engine's own (``src/Parsers/Lexer.cpp``).

The guard needs to know exactly where string literals, quoted identifiers and
comments begin and end: a ``;`` that the engine sees outside a string starts a
second statement, and chDB runs every statement it is given — even behind
``EXPLAIN AST``. So this lexer mirrors the engine rule by rule (backslash and
doubled-quote escapes, nested ``/* */`` comments, ``--``, ``//``, ``# ``/``#!``
comments, ``$tag$`` heredocs, Unicode-quoted ``‘strings’`` and ``“names”``)
instead of approximating SQL with regular expressions.

It works on Python code points where the engine works on UTF-8 bytes; the
only multi-byte characters the engine gives meaning to outside quotes are the
Unicode quotes, the mathematical minus and Unicode whitespace, handled here as
such. Anything else it does not recognise becomes an ``ERROR`` token, which the
guard refuses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Token", "TokenKind", "tokenize"]


class TokenKind(enum.Enum):
    WHITESPACE = "whitespace"
    COMMENT = "comment"
    BARE_WORD = "bare word"
    NUMBER = "number"
    STRING = "string literal"  # '…' and x'…' / b'…'
    UNICODE_STRING = "unicode string literal"  # ‘…’ (no escapes)
    HEREDOC = "heredoc"  # $tag$…$tag$ (no escapes)
    QUOTED_IDENTIFIER = "quoted identifier"  # `…` and "…"
    UNICODE_IDENTIFIER = "unicode quoted identifier"  # “…” (no escapes)
    SEMICOLON = "semicolon"
    VERTICAL_DELIMITER = "vertical delimiter"  # \G
    PUNCTUATION = "punctuation"
    ERROR = "error"


SIGNIFICANT_EXCLUDED = frozenset({TokenKind.WHITESPACE, TokenKind.COMMENT})

_ASCII_SPACE = " \t\n\r\f\v"
# Unicode spaces the engine skips between tokens (queries pasted from editors).
_UNICODE_SPACE = frozenset(
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")


def _is_word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str  # the exact source text of the token
    start: int

    @property
    def significant(self) -> bool:
        return self.kind not in SIGNIFICANT_EXCLUDED

    @property
    def is_identifier(self) -> bool:
        return self.kind in (TokenKind.BARE_WORD, TokenKind.QUOTED_IDENTIFIER, TokenKind.UNICODE_IDENTIFIER)

    def is_word(self, *words: str) -> bool:
        """A bare word equal (case-insensitively, as keywords are) to one of ``words``."""
        return self.kind is TokenKind.BARE_WORD and self.text.upper() in words

    def is_punct(self, text: str) -> bool:
        return self.kind is TokenKind.PUNCTUATION and self.text == text


class _Lexer:
    def __init__(self, sql: str) -> None:
        self.s = sql
        self.n = len(sql)
        self.prev_significant: Token | None = None

    def _number_separator(self, start_of_block: bool, hexa: bool, p: int) -> bool:
        s, n = self.s, self.n
        if s[p] != "_" or start_of_block:
            return False
        if p + 1 >= n:
            return False
        nxt = s[p + 1]
        return nxt in _HEX if hexa else nxt in _DIGITS

    def _number(self, p: int) -> tuple[TokenKind, int]:
        s, n, begin = self.s, self.n, p
        prev = self.prev_significant
        if prev is not None and prev.is_punct("."):
            # x.1.1 is tuple access: only a plain integer after a dot.
            p += 1
            while p < n and (s[p] in _DIGITS or self._number_separator(False, False, p)):
                p += 1
        else:
            start_of_block = False
            hexa = False
            if p + 2 < n and s[p] == "0" and s[p + 1] in "xXbB":
                valid = False
                if s[p + 1] in "xX":
                    if s[p + 2] in _HEX:
                        hexa = valid = True
                elif s[p + 2] in "01":
                    valid = True
                if valid:
                    p += 2
                    start_of_block = True
                else:
                    p += 1
            else:
                p += 1
            digits = _HEX if hexa else _DIGITS
            while p < n and (s[p] in digits or self._number_separator(start_of_block, hexa, p)):
                p += 1
                start_of_block = False
            if p < n and s[p] == ".":
                start_of_block = True
                p += 1
                while p < n and (s[p] in digits or self._number_separator(start_of_block, hexa, p)):
                    p += 1
                    start_of_block = False
            if p + 1 < n and (s[p] in "pP" if hexa else s[p] in "eE"):
                start_of_block = True
                p += 1
                if p + 1 < n and s[p] in "+-":
                    p += 1
                while p < n and (s[p] in _DIGITS or self._number_separator(start_of_block, False, p)):
                    p += 1
                    start_of_block = False
        if p < n and _is_word(s[p]):
            p += 1
            while p < n and _is_word(s[p]):
                p += 1
            if all(_is_word(c) or c == "$" for c in s[begin:p]):
                return TokenKind.BARE_WORD, p
            return TokenKind.ERROR, p
        return TokenKind.NUMBER, p

    def _quoted(self, p: int, quote: str) -> tuple[bool, int]:
        """Skip a quoted token with backslash and doubled-quote escapes; (closed, end)."""
        s, n = self.s, self.n
        p += 1
        while True:
            while p < n and s[p] != quote and s[p] != "\\":
                p += 1
            if p >= n:
                return False, n
            if s[p] == quote:
                p += 1
                if p < n and s[p] == quote:
                    p += 1
                    continue
                return True, p
            p += 1  # backslash: the next character is taken as is
            if p >= n:
                return False, n
            p += 1

    def _leading_dot_number(self, p: int) -> int:
        s, n = self.s, self.n
        start_of_block = True
        p += 1
        while p < n and (s[p] in _DIGITS or self._number_separator(start_of_block, False, p)):
            p += 1
            start_of_block = False
        if p + 1 < n and s[p] in "eE":
            start_of_block = True
            p += 1
            if p + 1 < n and s[p] in "+-":
                p += 1
            while p < n and (s[p] in _DIGITS or self._number_separator(start_of_block, False, p)):
                p += 1
                start_of_block = False
        return p

    def next(self, p: int) -> tuple[TokenKind, int]:
        s, n = self.s, self.n
        c = s[p]
        if c in _ASCII_SPACE:
            p += 1
            while p < n and s[p] in _ASCII_SPACE:
                p += 1
            return TokenKind.WHITESPACE, p
        if c in _DIGITS:
            return self._number(p)
        if c == "'":
            closed, end = self._quoted(p, "'")
            return (TokenKind.STRING if closed else TokenKind.ERROR), end
        if c in '"`':
            closed, end = self._quoted(p, c)
            return (TokenKind.QUOTED_IDENTIFIER if closed else TokenKind.ERROR), end
        if c in "()[]{},":
            return TokenKind.PUNCTUATION, p + 1
        if c == ";":
            return TokenKind.SEMICOLON, p + 1
        if c == ".":
            prev = self.prev_significant
            after_value = prev is not None and (
                prev.is_punct(")")
                or prev.is_punct("]")
                or prev.kind in (TokenKind.BARE_WORD, TokenKind.QUOTED_IDENTIFIER, TokenKind.NUMBER)
            )
            if p > 0 and (not (p + 1 < n and s[p + 1] in _DIGITS) or after_value):
                return TokenKind.PUNCTUATION, p + 1
            return TokenKind.NUMBER, self._leading_dot_number(p)
        if c == "-":
            if p + 1 < n and s[p + 1] == ">":
                return TokenKind.PUNCTUATION, p + 2
            if p + 1 < n and s[p + 1] == "-":
                return TokenKind.COMMENT, self._line_end(p)
            return TokenKind.PUNCTUATION, p + 1
        if c == "/":
            if p + 1 < n and s[p + 1] == "/":
                return TokenKind.COMMENT, self._line_end(p)
            if p + 1 < n and s[p + 1] == "*":
                return self._block_comment(p)
            return TokenKind.PUNCTUATION, p + 1
        if c == "#":
            if p + 1 < n and s[p + 1] in " !":
                return TokenKind.COMMENT, self._line_end(p)
            return TokenKind.ERROR, p + 1
        if c in "+*%?^@":
            if c == "@" and p + 1 < n and s[p + 1] == "@":
                return TokenKind.PUNCTUATION, p + 2
            return TokenKind.PUNCTUATION, p + 1
        if c == "=":
            return TokenKind.PUNCTUATION, p + (2 if p + 1 < n and s[p + 1] == "=" else 1)
        if c == "!":
            if p + 1 < n and s[p + 1] == "=":
                return TokenKind.PUNCTUATION, p + 2
            return TokenKind.ERROR, p + 1
        if c == "<":
            if s.startswith("<=>", p):
                return TokenKind.PUNCTUATION, p + 3
            return TokenKind.PUNCTUATION, p + (2 if p + 1 < n and s[p + 1] in "=>" else 1)
        if c == ">":
            return TokenKind.PUNCTUATION, p + (2 if p + 1 < n and s[p + 1] == "=" else 1)
        if c == ":":
            return TokenKind.PUNCTUATION, p + (2 if p + 1 < n and s[p + 1] == ":" else 1)
        if c == "|":
            return TokenKind.PUNCTUATION, p + (2 if p + 1 < n and s[p + 1] in "|>" else 1)
        if c == "\\":
            if p + 1 < n and s[p + 1] == "G":
                return TokenKind.VERTICAL_DELIMITER, p + 2
            return TokenKind.ERROR, p + 1
        if c == "\u2212":  # mathematical minus
            return TokenKind.PUNCTUATION, p + 1
        if c in "\u2018\u201c":
            close = "\u2019" if c == "\u2018" else "\u201d"
            end = s.find(close, p + 1)
            if end < 0:
                return TokenKind.ERROR, n
            kind = TokenKind.UNICODE_STRING if c == "\u2018" else TokenKind.UNICODE_IDENTIFIER
            return kind, end + 1
        if c == "$":
            heredoc = self._heredoc(p)
            if heredoc is not None:
                return TokenKind.HEREDOC, heredoc
            if p + 1 >= n or not _is_word(s[p + 1]):
                return TokenKind.PUNCTUATION, p + 1
        if c in "xXbB" and p + 2 < n and s[p + 1] == "'":
            return self._hex_or_bin_string(p)
        if _is_word(c) or c == "$":
            p += 1
            while p < n and (_is_word(s[p]) or s[p] == "$"):
                p += 1
            return TokenKind.BARE_WORD, p
        if c in _UNICODE_SPACE:
            p += 1
            while p < n and (s[p] in _UNICODE_SPACE or s[p] in _ASCII_SPACE):
                p += 1
            return TokenKind.WHITESPACE, p
        return TokenKind.ERROR, p + 1

    def _line_end(self, p: int) -> int:
        end = self.s.find("\n", p)
        return self.n if end < 0 else end

    def _block_comment(self, p: int) -> tuple[TokenKind, int]:
        s, n = self.s, self.n
        p += 2
        depth = 1  # nested comments, as the SQL standard (and the engine) have them
        while p + 2 <= n:
            if s[p] == "/" and s[p + 1] == "*":
                p += 2
                depth += 1
            elif s[p] == "*" and s[p + 1] == "/":
                p += 2
                depth -= 1
                if depth == 0:
                    return TokenKind.COMMENT, p
            else:
                p += 1
        return TokenKind.ERROR, n

    def _heredoc(self, p: int) -> int | None:
        s = self.s
        tag_end = s.find("$", p + 1)
        if tag_end < 0:
            return None
        if not all(_is_word(ch) for ch in s[p + 1 : tag_end]):
            return None
        tag = s[p : tag_end + 1]
        close = s.find(tag, tag_end + 1)
        if close < 0:
            return None
        return close + len(tag)

    def _hex_or_bin_string(self, p: int) -> tuple[TokenKind, int]:
        s, n = self.s, self.n
        allowed = _HEX if s[p] in "xX" else frozenset("01")
        p += 2
        while p < n and s[p] in allowed:
            p += 1
        if p >= n or s[p] != "'":
            return TokenKind.ERROR, n
        return TokenKind.STRING, p + 1


def tokenize(sql: str) -> list[Token]:
    """Split ``sql`` into tokens covering it exactly (``"".join(t.text) == sql``).

    Never raises: what the engine would reject becomes an ``ERROR`` token.
    """
    lexer = _Lexer(sql)
    tokens: list[Token] = []
    p = 0
    while p < lexer.n:
        kind, end = lexer.next(p)
        token = Token(kind, sql[p:end], p)
        tokens.append(token)
        if token.significant:
            lexer.prev_significant = token
        p = end
    return tokens
