import pytest

from chatloom.prompts import load_prompt, split_reasoning


@pytest.mark.parametrize(
    ("text", "answer", "reasoning"),
    [
        ("The answer is 391.", "The answer is 391.", ""),
        ("<think>17*23 = 391</think>The answer is 391.", "The answer is 391.", "17*23 = 391"),
        ("<think>\nstep 1\nstep 2\n</think>\n\nDone.", "Done.", "step 1\nstep 2"),
        ("Sure.<think>still thinking", "Sure.", "still thinking"),  # unterminated: stripped to the end
        ("<think>only thoughts", "", "only thoughts"),
        ("<think>a</think>One <think>b</think>two", "One two", "a\n\nb"),
        ("hidden start</think>Visible.", "Visible.", "hidden start"),  # template opened the block
        ("<THINKING>x</THINKING>ok", "ok", "x"),
        ("<reasoning>r</reasoning>ok", "ok", "r"),
        ("Use 3 < 4 > 2 freely", "Use 3 < 4 > 2 freely", ""),
    ],
)
def test_split_reasoning(text, answer, reasoning):
    assert split_reasoning(text) == (answer, reasoning)


@pytest.mark.parametrize("name", ["assistant", "tutor"])
def test_both_direct_and_cot_templates_strip_think_blocks(name):
    assert load_prompt(name).split_reasoning("<think>x</think>y") == ("y", "x")


def test_template_never_returns_an_empty_answer_for_an_unclosed_block():
    # Qwen2.5-Coder-0.5B with the tutor template did this for 1 of 8 questions
    template = load_prompt("tutor")
    assert template.split_reasoning("<think>\nThe next number in the sequence is 32.") == (
        "The next number in the sequence is 32.",
        "The next number in the sequence is 32.",
    )
    assert template.split_reasoning("<think>2+2 is 4.\n\nThe answer is 4.") == (
        "The answer is 4.",
        "2+2 is 4.\n\nThe answer is 4.",
    )
    assert template.split_reasoning("Fine.<think>half a thought") == ("Fine.", "half a thought")
    assert template.split_reasoning("") == ("", "")
