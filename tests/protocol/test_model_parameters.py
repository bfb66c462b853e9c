"""Model.supported_parameters and takes_response_format, from the offline server's /models."""

from __future__ import annotations

import httpx

from reka_nb.protocol.models import Model
from reka_nb.testing import OfflineServer


def _models(server: OfflineServer) -> dict[str, Model]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as client:
        data = client.get("/models").json()["data"]
    models = [Model.from_json(item) for item in data]
    return {m.id: m for m in models if m is not None}


def test_which_models_take_response_format(server: OfflineServer) -> None:
    models = _models(server)
    assert {m: models[m].takes_response_format for m in models} == {
        "reka-core": True,
        "reka-flash": True,
        "reka-edge": True,
        "reka-flash-3": True,
        "reka-edge-2603": False,
        "reka-core-20240501": True,
    }
    assert models["reka-edge-2603"].supported_parameters == (
        "model",
        "messages",
        "stream",
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
    )


def test_an_entry_that_says_nothing_is_none() -> None:
    with OfflineServer(model_metadata=False) as server:
        models = _models(server)
    assert {m.supported_parameters for m in models.values()} == {None}
    assert {m.takes_response_format for m in models.values()} == {None}
    model = Model.from_json({"id": "x", "supported_parameters": "response_format"})
    assert model is not None and model.takes_response_format is None
