"""phonenumbers' metadata patterns as automata over the ten digits.

A pattern is read once into a nondeterministic automaton; a state is the set of
automaton states after some digits, so a prefix of a number can be asked whether some, or
every, completion of a given length matches the pattern in full. :mod:`gateway.timezones`
uses this to answer for every number a prefix starts at once.
"""

from __future__ import annotations

import re
import typing

__all__ = ["MATCHED", "DigitPattern", "State", "Unsupported"]

_DIGITS = range(10)
_ANY_DIGIT = (1 << 10) - 1  # a class of digits is a 10-bit mask

State = frozenset[int]  # empty: no completion can match any more
# A prefix pattern (leading digits, national prefix: re.match) that matched already.
MATCHED: State = frozenset({-1})


class Unsupported(ValueError):
    """A pattern uses syntax `DigitPattern` does not read; its calling code is then left to
    phonenumbers, number by number."""


class DigitPattern:
    """A metadata regex as a nondeterministic automaton over the ten digits.

    phonenumbers' patterns use digits, ``\\d``, classes, ``(?:...)``, ``|``, ``?`` and
    ``{n}``/``{n,m}``; national prefixes also have capturing groups (the same to match).
    A state is the set of automaton states after some digits. `possible` and `certain`
    say whether some, or every, completion by ``rest`` more digits matches in full;
    ``prefix`` patterns (``re.match``) turn into `MATCHED` as soon as a prefix matches.
    """

    def __init__(self, pattern: str, *, prefix: bool = False) -> None:
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[int, int]]] = []
        self.prefix = prefix
        tree, at = self._alternation(pattern, 0)
        if at != len(pattern):
            raise Unsupported(pattern)
        start, self.end = self._build(tree)
        self._steps: dict[tuple[State, int], State] = {}
        self._possible: dict[tuple[State, int], bool] = {}
        self._certain: dict[tuple[State, int], bool] = {}
        self.initial = self._matched(self._closure((start,)))

    def _alternation(self, text: str, at: int) -> tuple[tuple, int]:
        branches = []
        while True:
            items = []
            while at < len(text) and text[at] not in "|)":
                atom, at = self._atom(text, at)
                if text.startswith("?", at):
                    atom, at = ("repeat", atom, 0, 1), at + 1
                elif text.startswith("{", at):
                    bounds = re.match(r"\{(\d+)(?:,(\d+))?\}", text[at:])
                    if bounds is None:
                        raise Unsupported(text)
                    low = int(bounds[1])
                    atom = ("repeat", atom, low, int(bounds[2] or low))
                    at += bounds.end()
                if at < len(text) and text[at] in "?{*+":
                    raise Unsupported(text)
                items.append(atom)
            branches.append(("sequence", items))
            if not text.startswith("|", at):
                return ("alternation", branches), at
            at += 1

    def _atom(self, text: str, at: int) -> tuple[tuple, int]:
        char = text[at]
        if char in "0123456789":
            return ("digits", 1 << int(char)), at + 1
        if text.startswith("\\d", at):
            return ("digits", _ANY_DIGIT), at + 2
        if char == "[":
            close = text.find("]", at)
            body = re.fullmatch(r"(?:\\d|\d-\d|\d)+", text[at + 1:close]) if close > 0 else None
            if body is None:
                raise Unsupported(text)
            mask = 0
            for item in re.findall(r"\\d|\d-\d|\d", body[0]):
                low, high = (0, 9) if item == "\\d" else (int(item[0]), int(item[-1]))
                mask |= sum(1 << d for d in range(low, high + 1))
            return ("digits", mask), close + 1
        if char == "(":
            at += 3 if text.startswith("(?:", at) else 1
            tree, at = self._alternation(text, at)
            if not text.startswith(")", at):
                raise Unsupported(text)
            return tree, at + 1
        raise Unsupported(text)

    def _new(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def _build(self, node: tuple) -> tuple[int, int]:
        """Thompson's construction: the (start, end) states of the node's automaton."""
        start = self._new()
        if node[0] == "digits":
            end = self._new()
            self.edges[start].append((node[1], end))
            return start, end
        if node[0] == "sequence":
            end = start
            for item in node[1]:
                first, last = self._build(item)
                self.eps[end].append(first)
                end = last
            return start, end
        if node[0] == "alternation":
            end = self._new()
            for item in node[1]:
                first, last = self._build(item)
                self.eps[start].append(first)
                self.eps[last].append(end)
            return start, end
        _, item, low, high = node
        at, exits = start, []
        for copy in range(high):
            if copy >= low:
                exits.append(at)
            first, last = self._build(item)
            self.eps[at].append(first)
            at = last
        end = self._new()
        for state in (*exits, at):
            self.eps[state].append(end)
        return start, end

    def _closure(self, states: typing.Iterable[int]) -> State:
        seen, todo = set(states), list(states)
        while todo:
            for state in self.eps[todo.pop()]:
                if state not in seen:
                    seen.add(state)
                    todo.append(state)
        # Only states that read a digit, or the end, tell sets apart.
        return frozenset(s for s in seen if self.edges[s] or s == self.end)

    def _matched(self, state: State) -> State:
        return MATCHED if self.prefix and self.end in state else state

    def step(self, state: State, digit: int) -> State:
        if state is MATCHED:
            return state
        key = (state, digit)
        found = self._steps.get(key)
        if found is None:
            bit = 1 << digit
            found = self._steps[key] = self._matched(self._closure(
                [target for s in state for mask, target in self.edges[s] if mask & bit]))
        return found

    def possible(self, state: State, rest: int) -> bool:
        if not state:
            return False
        if rest == 0:
            return self.end in state
        key = (state, rest)
        found = self._possible.get(key)
        if found is None:
            found = self._possible[key] = any(self.possible(self.step(state, d), rest - 1)
                                              for d in _DIGITS)
        return found

    def certain(self, state: State, rest: int) -> bool:
        if rest == 0:
            return self.end in state
        key = (state, rest)
        found = self._certain.get(key)
        if found is None:
            found = self._certain[key] = all(self.certain(self.step(state, d), rest - 1)
                                             for d in _DIGITS)
        return found
