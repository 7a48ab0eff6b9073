"""The inline calculator's reading of a reply as it streams: where it steps in.

A small model that writes "16 - 3 - 4 = 8" has slipped. The calculator (Cobbe et al., 2021)
checks each result the model writes after an equation's "=", digit by digit. While the
model's digits agree with the calculator's result they pass through untouched, so a reply
whose arithmetic is right is exactly the reply the model writes without the calculator. At
the first digit that disagrees the reply is cut, the rest of the right result is written,
and the engine restarts from there, so the model builds on the right number.

After a written result the model sometimes goes on with its own digits ("= 102" then ".25"):
those are dropped too, and the engine restarts once more from the text without them, or the
model would go on believing its 102.25.

:func:`decode_calculating` runs an engine that way; :class:`EquationReader` reads its text.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator
from dataclasses import dataclass, replace

from chatloom.arithmetic import finish_equation
from chatloom.models._engine import Piece, Prepared
from chatloom.models.toolcalls import opens_tool_call

MAX_CALCULATIONS = 32  # numbers the inline calculator may correct in one reply

NUMBER_LEAD_IN = " \t$€£\\"
"""What may stand between "=" and the number in a model's text."""


@dataclass
class Step:
    """What to do with one piece of the model's text."""

    passed: str
    """Text to pass on, in order, before anything else."""
    correction: str | None = None
    """None: go on reading the engine. Otherwise stop it, append this text (the rest of the
    calculator's result, perhaps "") and restart the engine from the reply so far."""
    ends_in_result: bool = False
    """The correction completes a result the model got wrong: the reply then ends in it."""


class EquationReader:
    """Follows one engine run's text and decides where the calculator steps in.

    ``can_calculate(text)`` says whether the "=" that ``text`` ends with may be checked at all
    (not inside a tool call or code, not past the per-reply limit).
    """

    def __init__(
        self,
        text: str,
        *,
        after_result: bool,
        can_calculate: Callable[[str], bool],
    ) -> None:
        self._text = text
        self._can_calculate = can_calculate
        self._state = "after" if after_result else "prose"
        self._result = ""  # the calculator's result for the equation being written
        self._number = ""  # the model's digits of it so far (passed on: a prefix of _result)
        self._held = ""  # a "." or "," that may be a full stop or a decimal point
        self._dropped = False  # digits the model added to a written result were dropped

    def feed(self, piece: str) -> Step:
        """Read one piece of the engine's text."""
        passed: list[str] = []
        for index, char in enumerate(piece):
            correction = self._read(char, passed)
            if correction is not None:
                if correction == "" and self._state == "prose":  # keep the whole token
                    passed.append(piece[index + 1 :])
                return self._step(passed, correction)
        return self._step(passed, None)

    def end(self) -> str:
        """The text still owed when the engine stops: a held full stop, or the rest of a
        result the model stopped writing midway."""
        if (
            self._state == "number"
            and self._number != self._result
            and not self._same_number(self._number + self._held)
        ):
            return self._result[len(self._number) :]
        return self._held

    def _step(self, passed: list[str], correction: str | None) -> Step:
        text = "".join(passed)
        self._text += text
        return Step(text, correction, ends_in_result=correction is not None and self._state == "number")

    def _read(self, char: str, passed: list[str]) -> str | None:
        """Read one character; returns a correction (see Step) to stop the engine."""
        if self._state == "after":
            if char.isdigit():
                self._held, self._dropped = "", True
                return None
            if char in ".," and not self._held:
                self._held = char
                return None
            passed.append(self._held + char)
            self._held, self._state = "", "prose"
            return "" if self._dropped else None
        if self._state == "lead":
            if char in NUMBER_LEAD_IN:
                passed.append(char)
                return None
            self._state, self._number = ("number", "") if char.isdigit() or char in "-." else ("prose", "")
        if self._state == "number":
            return self._read_number(char, passed)
        passed.append(char)
        if char == "=":
            text = self._text + "".join(passed)
            if self._can_calculate(text):
                result = finish_equation(text)
                if result is not None:
                    self._state, self._result = "lead", result
        return None

    def _read_number(self, char: str, passed: list[str]) -> str | None:
        if char in ".," and not self._held:
            self._held = char
            return None
        if char.isdigit() or (char == "-" and not self._number):
            longer = self._number + self._held + char
            if self._result.startswith(longer):
                passed.append(self._held + char)
                self._number, self._held = longer, ""
            elif self._same_number(longer):
                self._held += char  # "34.0": passed on only if the number ends here
            else:
                return self._result[len(self._number) :]  # the model's number departs here
            return None
        # The model's number has ended.
        if self._number == self._result or self._same_number(self._number + self._held):
            passed.append(self._held)
            self._held, self._state = "", "prose"
            return self._read(char, passed)
        return self._result[len(self._number) :]

    def _same_number(self, digits: str) -> bool:
        """Whether ``digits`` is the result with trailing zeros or a full stop ("34.00", "34.")."""
        extra = digits[len(self._result) :]
        if not digits.startswith(self._result) or not extra:
            return False
        if "." not in self._result:
            return extra[0] == "." and set(extra[1:]) <= {"0"}
        return set(extra) <= {"0"}


def decode_calculating(
    generate: Callable[[Prepared], Generator[Piece, None, None]],
    prepared: Prepared,
    tool_names: Collection[str],
) -> Generator[Piece, None, None]:
    """The engine's text (``generate``), with each equation's result checked by the calculator.

    Where the model's result after an equation's "=" departs from the calculator's
    ("so she has 16 - 3 - 4 = 8"), generation stops, the calculator's result is written
    and the engine continues from there, so the model builds on the right number. A reply
    whose arithmetic is right is left exactly as the model wrote it (see EquationReader).
    An "=" inside a tool call or code (a call to one of ``tool_names`` included) is no
    arithmetic prose and is left alone.
    """
    text, produced, calculations = "", 0, 0
    after_result = False  # the reply so far ends in a result the calculator corrected

    def can_calculate(text_so_far: str) -> bool:
        return calculations < MAX_CALCULATIONS and not opens_tool_call(text_so_far, tool_names)

    while True:
        segment = replace(prepared, prefix=text, max_tokens=max(prepared.max_tokens - produced, 1))
        stream = generate(segment)
        reader = EquationReader(text, after_result=after_result, can_calculate=can_calculate)
        correction: str | None = None
        last = Piece("", done=True)
        try:
            for piece in stream:
                if piece.done:
                    last = piece
                    owed = reader.end()
                    if owed:
                        text += owed
                        yield Piece(owed)
                    break
                produced += 1
                step = reader.feed(piece.text)
                if step.passed:
                    text += step.passed
                    yield Piece(step.passed)
                if step.correction is not None:
                    correction, after_result = step.correction, step.ends_in_result
                    break
        finally:
            stream.close()  # stops the engine mid-reply and releases its lock
        if correction is None:
            # The last segment's prompt held the text written so far: count that as output
            # (approximately: one token per piece, one per corrected number).
            earlier = produced - last.output_tokens + calculations
            yield replace(
                last,
                input_tokens=max(last.input_tokens - earlier, 0),
                output_tokens=produced + calculations,
                calculations=calculations,
            )
            return
        if after_result:
            calculations += 1
        if correction:
            text += correction
            yield Piece(correction)
        if produced >= prepared.max_tokens:
            yield Piece("", done=True, output_tokens=produced, finish_reason="length", calculations=calculations)
            return
