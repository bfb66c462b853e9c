"""%reka / %%reka with --schema and --labels in a real in-process IPython shell, against the
offline server: the key/value display, the data kept, --each with a column per field."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

from reka_nb import Results
from reka_nb.client.structured import forget_refusals
from reka_nb.testing import OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
NOTE = "No model ran: reka_nb's offline server made this answer from the schema."
CAT_NOTE = f"{NOTE} Image 1: JPEG, 451×300 px, 35,042 bytes."
FOOTER = re.compile(r"^\*reka-flash · \d+ tokens in, \d+ out(?: · \$0\.\d+)? · \d+\.\d s\*$")


class Recording(DisplayPublisher):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[dict[str, Any]] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):  # type: ignore[no-untyped-def]
        self.published.append(data)


@pytest.fixture
def ip(
    shell: InteractiveShell, env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    """The shell, showing answers as a notebook does (one display updated in place)."""
    import ipykernel  # noqa: F401  (every kernel has it loaded; the notebook display checks)

    from reka_nb.notebook import display

    monkeypatch.setattr(display, "can_update_displays", lambda: True)
    monkeypatch.setenv("REKA_NB_DISPLAY", "live")
    monkeypatch.setattr(shell, "display_pub", Recording())
    forget_refusals()
    for name in ("_reka", "Receipt", "out"):
        shell.user_ns.pop(name, None)
    yield shell
    forget_refusals()


def run(shell: InteractiveShell, code: str) -> Any:
    return shell.run_cell(code, store_history=False)


def published(shell: InteractiveShell) -> list[dict[str, Any]]:
    return shell.display_pub.published  # type: ignore[no-any-return,attr-defined]


def test_schema_cell_shows_a_key_value_table_and_keeps_the_data(
    ip: InteractiveShell, env: OfflineServer
) -> None:
    result = run(ip, f'%%reka --schema "caption, people int, tags list[str]" -i {CAT}\nCount.')
    result.raise_error()
    final = published(ip)[-1]
    table, footer = final["text/markdown"].split("\n\n---\n\n")
    assert table == (
        "| field | value |\n|:--|:--|\n"
        f"| **caption** | {CAT_NOTE.replace('_', chr(92) + '_')} |\n"
        "| **people** | 1 |\n"
        "| **tags** | offline tags |"
    )
    assert FOOTER.match(footer), footer
    assert final["text/plain"].startswith(
        f"caption  {CAT_NOTE}\npeople   1\ntags     offline tags\n\n"
    )
    assert ip.user_ns["_reka"].data == {"caption": CAT_NOTE, "people": 1, "tags": ["offline tags"]}
    assert env.chat_requests()[-1].body["response_format"]["json_schema"]["strict"] is True


def test_labels_and_a_schema_from_a_variable(ip: InteractiveShell, env: OfflineServer) -> None:
    run(ip, f"%reka --labels cat,dog,bird -i {CAT} Which animal?").raise_error()
    assert ip.user_ns["_reka"].data == {"label": "cat"}
    assert published(ip)[-1]["text/markdown"].startswith(
        "| field | value |\n|:--|:--|\n| **label** | cat |\n\n---\n\n*reka-flash · "
    )
    run(
        ip,
        "from pydantic import BaseModel\n"
        "class Receipt(BaseModel):\n    store: str\n    total: float",
    ).raise_error()
    run(ip, f"%%reka --schema Receipt -i {CAT} -o out\nRead it.").raise_error()
    data = ip.user_ns["out"].data
    assert type(data).__name__ == "Receipt" and data.total == 1.5 and data.store == CAT_NOTE
    run(ip, f"%reka --labels cat,dog --multi-label -i {CAT} Tags?").raise_error()
    assert ip.user_ns["_reka"].data == {"labels": ["cat"]}


def test_a_streamed_answer_shows_fields_not_braces(
    ip: InteractiveShell, env: OfflineServer
) -> None:
    env.token_delay = 0.02
    try:
        run(ip, f'%%reka --schema "caption, people int" -i {CAT}\nCount.').raise_error()
    finally:
        env.token_delay = 0.0
    updates = [p for p in published(ip) if "text/markdown" in p]
    streaming = [p for p in updates[:-1] if p["text/markdown"].startswith("| field | value |")]
    assert len(streaming) >= 2
    assert all("{" not in p["text/plain"] for p in streaming)
    assert any("| **people** | ▍ |" in p["text/markdown"] for p in streaming)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ('%%reka --schema "n number" -i {cat}\n?', "schema field 'n' has an unknown type 'number'"),
        ("%%reka --labels a,a -i {cat}\n?", "'a'"),
        ("%%reka --multi-label -i {cat}\n?", "multi_label=True needs labels=[...]"),
        ("%%reka --schema nope.json -i {cat}\n?", "--schema nope.json: No such file or directory"),
    ],
)
def test_an_unusable_schema_is_a_usage_error_with_nothing_sent(
    ip: InteractiveShell, env: OfflineServer, cell: str, message: str
) -> None:
    result = run(ip, cell.format(cat=CAT))
    assert isinstance(result.error_in_exec, UsageError)
    assert message in str(result.error_in_exec)
    assert env.requests == []


def test_each_keeps_results_with_a_column_per_field(
    ip: InteractiveShell, env: OfflineServer, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        buffer = io.BytesIO()
        Image.new("RGB", (10 + i, 8), (1, 2, 3)).save(buffer, "PNG")
        (folder / f"img{i}.png").write_bytes(buffer.getvalue())
    run(ip, f'%%reka -i {folder} --each --schema "text, people int"\nCount.').raise_error()
    results = ip.user_ns["_reka"]
    assert isinstance(results, Results)
    frame = results.to_pandas()
    assert list(frame.columns[:3]) == ["image", "field_text", "people"]
    assert frame["people"].tolist() == [1, 1]
    html = results._repr_html_()
    left = "text-align:left;vertical-align:top"
    wrap = "overflow-wrap:anywhere;word-break:break-word"
    assert (
        f'<th style="{left};min-width:10em;{wrap}">image</th><th style="{left}">field_text</th>'
        f'<th style="{left}">people</th>'
        '<th style="text-align:right;vertical-align:top;white-space:nowrap">tokens in/out</th>'
    ) in html
    assert f'<td style="{left};{wrap}">{NOTE}' in html.replace("&#x27;", "'")
    assert f'</td><td style="{left};{wrap}">1</td>' in html
