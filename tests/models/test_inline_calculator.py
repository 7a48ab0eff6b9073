"""The inline calculator's reader: which of the model's digits pass, and where it corrects."""

import pytest

from chatloom.models._inline_calculator import EquationReader


def read(text: str, *, after_result: bool = False, piece_chars: int = 1) -> tuple[str, str | None, str]:
    """Feed ``text`` in pieces; returns (text passed on, the correction or None, text owed at the end)."""
    reader = EquationReader("", after_result=after_result, can_calculate=lambda t: "```" not in t)
    passed = ""
    for i in range(0, len(text), piece_chars):
        step = reader.feed(text[i : i + piece_chars])
        passed += step.passed
        if step.correction is not None:
            return passed, step.correction, ""
    return passed, None, reader.end()


@pytest.mark.parametrize(
    "text",
    [
        "So 3 + 4 = 7 days.",
        "So 3 + 4 = 7. Then 7 * 2 = 14.00 hours, or $3 * 2 = $6, and 1/3 = 0.3333",
        "Half: 7 / 2 = 3.5, 80,000 + 50,000 = 130,000 in all",
        "Let x = 5 and y = x + 1.",  # not an equation the calculator reads
        "So 3 + 4 = seven.",
        "```python\nprint(2 + 2 = 5)\n```",  # code: left alone
    ],
)
@pytest.mark.parametrize("piece_chars", [1, 4])
def test_right_results_and_other_text_pass_through_untouched(text, piece_chars):
    assert read(text, piece_chars=piece_chars) == (text, None, "")


@pytest.mark.parametrize(
    "text, passed, correction",
    [
        ("She has 16 - 3 - 4 = 8 eggs", "She has 16 - 3 - 4 = ", "9"),
        ("So 12 * 12 = 124 tiles", "So 12 * 12 = 1", "44"),  # departs at the second digit
        ("So 12 * 12 = 14 tiles", "So 12 * 12 = 14", "4"),  # ends too soon
        ("So 12 * 12 = 1440 tiles", "So 12 * 12 = 144", ""),  # goes on too long
        ("Total 15.75 + 20.25 + 66 = 102.25 in all", "Total 15.75 + 20.25 + 66 = 102", ""),
        ("Each 102 / 3 = 34.08", "Each 102 / 3 = 34", ""),  # "34.0" is held, not passed, until the 8
        ("Cost 3 * 2.5 = $7.0 each", "Cost 3 * 2.5 = $7", ".5"),
    ],
)
def test_a_departing_result_is_cut_where_it_departs(text, passed, correction):
    assert read(text) == (passed, correction, "")


def test_a_reply_that_stops_midway_through_a_result_is_owed_the_rest():
    assert read("So 12 * 12 = 14") == ("So 12 * 12 = 14", None, "4")
    assert read("So 12 * 12 = 144.") == ("So 12 * 12 = 144", None, ".")


@pytest.mark.parametrize("piece_chars", [1, 3])
def test_after_a_correction_digits_that_lengthen_the_result_are_dropped(piece_chars):
    # The engine restarts from "... = 102"; the model goes on ".25 in all": drop ".25", keep
    # the token after it, and restart again from the text without them.
    passed, correction, _ = read(".25 in all.", after_result=True, piece_chars=piece_chars)
    assert correction == "" and passed.startswith(" ") and "2" not in passed
    # A full stop or a word after the result is not a lengthening: nothing to restart.
    assert read(". Then 2 + 2 = 4.", after_result=True) == (". Then 2 + 2 = 4", None, ".")
    assert read(" apples", after_result=True) == (" apples", None, "")
