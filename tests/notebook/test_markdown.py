"""close_fences and escape_markdown: the Markdown shown while an answer streams in."""

from __future__ import annotations

import pytest

from reka_nb.notebook.markdown import CURSOR, close_fences, escape_markdown, wrap_long_words


@pytest.mark.parametrize(
    "text",
    [
        "",
        "No code at all.",
        "Use ``` inline, not at the start of a line.",
        "```python\nprint(1)\n```",
        "```python\nprint(1)\n```\nAfter the code.",
        "~~~\ncode\n~~~",
        "```\ncode\n`````",  # a closing fence may be longer than the opening one
        "```\ncode\n   ```  \t",  # indented up to 3 spaces, trailing blanks allowed
        "````markdown\n```python\nx = 1\n```\n````",  # a shorter fence inside is content
        "    ```\nindented code, not a fence",  # 4 spaces: an indented code block
        "``` a`b\nnot a fence: a backtick in a backtick fence's info string",
        "```\none\n```\n~~~\ntwo\n~~~\n",
        "```\r\ncode\r\n```",
    ],
)
def test_balanced_or_fenceless_text_is_unchanged(text: str) -> None:
    assert close_fences(text) == text


@pytest.mark.parametrize(
    ("text", "closed"),
    [
        ("Code:\n```python\nprint(1)", "Code:\n```python\nprint(1)\n```"),
        ("~~~\ncode", "~~~\ncode\n~~~"),
        (f"```py\nx = 1{CURSOR}", f"```py\nx = 1{CURSOR}\n```"),
        ("   ```\ncode", "   ```\ncode\n```"),
        ("~~~ a`b\ncode", "~~~ a`b\ncode\n~~~"),  # a tilde fence's info may hold backticks
        ("```\ncode\n``` not a closing fence", "```\ncode\n``` not a closing fence\n```"),
        ("```\none\n```\n~~~~\ntwo", "```\none\n```\n~~~~\ntwo\n~~~~"),
        ("```\r\ncode", "```\r\ncode\n```"),
    ],
)
def test_an_open_fence_is_closed_with_its_own_marker(text: str, closed: str) -> None:
    assert close_fences(text) == closed


def test_a_fence_of_the_other_character_inside_an_open_block_is_content() -> None:
    assert close_fences("```\n~~~\nstill code") == "```\n~~~\nstill code\n```"
    assert close_fences("~~~\n```\nstill code") == "~~~\n```\nstill code\n~~~"
    assert close_fences("```\n~~~\ncode\n~~~") == "```\n~~~\ncode\n~~~\n```"


def test_a_long_fence_is_closed_with_as_many_characters() -> None:
    assert close_fences("````\n```\nstill code") == "````\n```\nstill code\n````"
    assert close_fences("~~~~~\n~~~~\ncode") == "~~~~~\n~~~~\ncode\n~~~~~"


def test_escape_markdown() -> None:
    assert escape_markdown("reka-flash") == "reka-flash"
    assert escape_markdown("a_b*c`d[e]<f>#g|h~i\\") == r"a\_b\*c\`d\[e\]\<f\>\#g\|h\~i\\"


def test_a_long_unbroken_word_wraps_and_other_text_is_left_alone() -> None:
    url = "https://example.com/" + "0123456789" * 4
    assert wrap_long_words(f"See {url} now") == (
        f'<div style="overflow-wrap:anywhere;word-break:break-word">\n\nSee {url} now\n\n</div>'
    )
    words = "A sentence of ordinary words, " + "x" * 39 + " and a short URL https://a.io/b"
    assert wrap_long_words(words) == words
