"""Display traffic of a streamed answer: NotebookPresenter against an update for every token.

A 4,000-word answer about 3 images streams from the offline server at about 200 tokens a
second (token delay 5 ms) through ``run_describe``, into two presenters at once: ours (the
thumbnails sent once, then at most 10 updates a second within a byte budget) and one that
updates on every token. Each display message is
serialized as ipykernel would send it (a jupyter_client Session message, signed), and its
size and time are recorded. The figures are compared with the limits Jupyter Server applies
to iopub traffic by default: 1,000 messages/s and 1 MB/s, averaged over 3 s.

Run: ``python benchmarks/bench_display.py`` (about 25 s). It prints figures, asserts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from jupyter_client.session import Session
from PIL import Image
from traitlets.config import Config

from reka_nb import Description, PreparedImage, RekaClient
from reka_nb.client.sync import run_describe
from reka_nb.notebook.display import NotebookPresenter
from reka_nb.testing import OfflineServer

CAT = Path(__file__).resolve().parent.parent / "docs" / "images" / "cat.jpeg"

WORDS = 4_000
TOKEN_DELAY = 0.005  # 200 tokens a second
MSG_LIMIT = 1_000  # Jupyter Server's iopub_msg_rate_limit, messages/s
DATA_LIMIT = 1_000_000  # iopub_data_rate_limit, bytes/s
WINDOW = 3.0  # rate_limit_window, seconds


@dataclass
class Traffic:
    """Times and wire sizes of the display messages of one display id."""

    times: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def peak(self, window: float, sizes: bool) -> float:
        """The most messages (or bytes) within any ``window`` seconds, per second."""
        best, start, total = 0.0, 0, 0.0
        for end, t in enumerate(self.times):
            total += self.sizes[end] if sizes else 1
            while t - self.times[start] >= window:
                total -= self.sizes[start] if sizes else 1
                start += 1
            best = max(best, total)
        return best / window


class WirePublisher(DisplayPublisher):
    """Serializes each display message as ipykernel would, and records its size per display id."""

    def __init__(self) -> None:
        super().__init__()
        self.session = Session(key=b"benchmark-signing-key")
        self.request = self.session.msg("execute_request", {"code": "%%reka"})
        self.traffic: dict[str, Traffic] = {}
        self.owner: str | None = None  # the presenter publishing now (None: a timer thread)
        self._owners: dict[str, str] = {}  # display id -> presenter

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        now = time.monotonic()
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        kind = "update_display_data" if update else "display_data"
        msg = self.session.msg(kind, content, parent=self.request)
        size = sum(len(frame) for frame in self.session.serialize(msg))
        display_id = (transient or {}).get("display_id", "")
        owner = self.owner or self._owners[display_id]
        if display_id:
            self._owners[display_id] = owner
        traffic = self.traffic.setdefault(owner, Traffic())
        traffic.times.append(now)
        traffic.sizes.append(size)


class Both:
    """A presenter that hands every event to several presenters, telling the publisher whose."""

    def __init__(self, wire: WirePublisher, **presenters: NotebookPresenter) -> None:
        self.wire = wire
        self.presenters = presenters

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for name, presenter in self.presenters.items():
            self.wire.owner = name
            getattr(presenter, method)(*args, **kwargs)
        self.wire.owner = None

    def start(self, *, model: str, prompt: str, images: Sequence[PreparedImage]) -> None:
        self._each("start", model=model, prompt=prompt, images=images)

    def update(self, delta: str) -> None:
        self._each("update", delta)

    def finish(self, description: Description) -> None:
        self._each("finish", description)

    def fail(self, error: BaseException, partial_text: str) -> None:
        self._each("fail", error, partial_text)


def three_images() -> list[Any]:
    """The cat as a file, a 12 MP photo made from it (PIL) and a chart-like PNG (numpy)."""
    cat = Image.open(CAT)
    photo = cat.resize((4000, 3000))
    stripes = numpy.zeros((600, 800, 3), dtype=numpy.uint8)
    stripes[:, ::40] = (200, 30, 30)
    return [str(CAT), photo, stripes]


def answer_text(words: int) -> str:
    """Markdown of ``words`` words: paragraphs of 60 words, a heading every 10 paragraphs."""
    vocabulary = ("the", "cat", "sits", "on", "a", "warm", "mat", "by", "the", "window")
    out = []
    for n in range(words):
        if n % 600 == 0:
            out.append(f"\n\n## Part {n // 600 + 1}\n\n")
        elif n % 60 == 0:
            out.append("\n\n")
        out.append(vocabulary[n % len(vocabulary)] + " ")
    return "".join(out).strip()


def report(name: str, traffic: Traffic) -> tuple[str, ...]:
    span = traffic.times[-1] - traffic.times[0]
    trips = (
        traffic.peak(WINDOW, sizes=False) > MSG_LIMIT
        or traffic.peak(WINDOW, sizes=True) > DATA_LIMIT
    )
    return (
        name,
        f"{len(traffic.times):,}",
        f"{sum(traffic.sizes) / 1e6:,.2f} MB",
        f"{len(traffic.times) / span:,.1f}",
        f"{traffic.peak(1.0, sizes=False):,.0f}",
        f"{traffic.peak(1.0, sizes=True) / 1e3:,.0f} kB/s",
        f"{traffic.peak(WINDOW, sizes=True) / 1e3:,.0f} kB/s",
        "TRIPS them" if trips else "within",
    )


def main() -> None:
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    wire = WirePublisher()
    shell.display_pub = wire
    ours = NotebookPresenter(mode="live")
    every_token = NotebookPresenter(rate=1e9, max_bytes_per_second=1e18, mode="live")
    with OfflineServer(token_delay=TOKEN_DELAY, reply=answer_text(WORDS)) as server:
        client = RekaClient(base_url=server.base_url, api_key=server.api_key)
        started = time.monotonic()
        images = three_images()
        both = Both(wire, ours=ours, every_token=every_token)
        answer = run_describe(client, images, "Write at length.", show=both)
        elapsed = time.monotonic() - started
        client.close()
    tokens = answer.usage.output_tokens if answer.usage else 0
    print(
        f"answer: {tokens:,} tokens, {len(answer):,} characters in {elapsed:.1f} s "
        f"({tokens / elapsed:.0f} tokens/s)\n"
    )
    ours_traffic, every_traffic = wire.traffic["ours"], wire.traffic["every_token"]
    print(f"thumbnails of {len(images)} images: one message of {ours_traffic.sizes[0]:,} bytes\n")
    rows = [
        ("", "messages", "bytes", "msg/s mean", "msg/s peak", "peak 1 s", "peak 3 s", "limits"),
        report("NotebookPresenter", ours_traffic),
        report("update every token", every_traffic),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    ratio_msgs = len(every_traffic.times) / len(ours_traffic.times)
    ratio_bytes = sum(every_traffic.sizes) / sum(ours_traffic.sizes)
    print(
        f"\nJupyter's iopub limits: {MSG_LIMIT:,} msg/s and {DATA_LIMIT / 1e3:,.0f} kB/s, "
        f"averaged over {WINDOW:g} s ('peak 3 s' is that average; 'peak 1 s' the busiest second)."
    )
    print(
        f"Updating on every token sends {ratio_msgs:,.0f}x the messages "
        f"and {ratio_bytes:,.0f}x the bytes."
    )


if __name__ == "__main__":
    main()
