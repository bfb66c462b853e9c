"""Every test here runs on each transport an asyncio client can use (``transport``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_each_transport(transport: str) -> str:
    return transport
