"""The offline models' labels: with ``varied_choices`` each model picks an enum value by a rule
tests can repeat (``offline_choice``), so models disagree and a known truth scores them."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
from PIL import Image

from reka_nb.offline import (
    DEFAULT_ACCURACY,
    MODEL_ACCURACY,
    OfflineServer,
    image_digest,
    offline_choice,
    reference_choice,
)

LABELS = ["damaged", "intact", "unclear"]
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": LABELS}},
    "required": ["label"],
    "additionalProperties": False,
}
MULTI = {
    "type": "object",
    "properties": {
        "labels": {
            "type": "array",
            "items": {"type": "string", "enum": LABELS},
            "uniqueItems": True,
            "minItems": 2,
        }
    },
    "required": ["labels"],
}


def _png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (shade, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _ask(server: OfflineServer, model: str, png: bytes, prompt: str, schema: Any = SCHEMA) -> Any:
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    body = {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": prompt},
                ],
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "labels", "schema": schema, "strict": True},
        },
    }
    reply = httpx.post(
        f"{server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert reply.status_code == 200, reply.text
    return json.loads(reply.json()["choices"][0]["message"]["content"])


def test_without_varied_choices_every_model_takes_the_first_label(server: OfflineServer) -> None:
    for model in ("reka-core", "reka-edge"):
        for shade in range(4):
            assert _ask(server, model, _png(shade), "Damaged?") == {"label": "damaged"}


def test_each_model_answers_as_the_rule_says_and_reset_turns_it_off(server: OfflineServer) -> None:
    server.varied_choices = True
    seen: dict[str, list[str]] = {}
    for model in ("reka-core", "reka-flash", "reka-edge"):
        for shade in range(12):
            png = _png(shade)
            label = _ask(server, model, png, "  Damaged? ")["label"]
            assert label == offline_choice(model, LABELS, [image_digest(png)], "Damaged?")
            assert _ask(server, model, png, "Damaged?")["label"] == label  # deterministic
            seen.setdefault(model, []).append(label)
    assert len({tuple(v) for v in seen.values()}) > 1  # the models disagree
    assert set().union(*seen.values()) == set(LABELS)
    server.reset()
    assert server.varied_choices is False
    assert _ask(server, "reka-edge", _png(0), "Damaged?") == {"label": "damaged"}


def test_multi_label_answers_start_at_the_models_choice(server: OfflineServer) -> None:
    server.varied_choices = True
    png = _png(7)
    first = offline_choice("reka-edge", LABELS, [image_digest(png)], "Tags?")
    start = LABELS.index(first)
    expected = [LABELS[start], LABELS[(start + 1) % 3]]
    assert _ask(server, "reka-edge", png, "Tags?", MULTI) == {"labels": expected}


def test_the_rule_gives_each_model_its_accuracy_and_wrong_answers_are_other_labels() -> None:
    keys = [[f"{n:064x}"] for n in range(2000)]
    for model in ("reka-core", "reka-flash", "reka-edge", "reka-edge-2603", "a-new-model"):
        right = 0
        for images in keys:
            truth = reference_choice(LABELS, images, "Damaged?")
            choice = offline_choice(model, LABELS, images, "Damaged?")
            assert choice in LABELS
            right += choice == truth
        accuracy = MODEL_ACCURACY.get(model, DEFAULT_ACCURACY)
        assert abs(right / len(keys) - accuracy) < 0.04, (model, right)
    assert MODEL_ACCURACY["reka-core"] > MODEL_ACCURACY["reka-flash"] > MODEL_ACCURACY["reka-edge"]
    assert offline_choice("reka-edge", ["only"], ["x"], "?") == "only"
    assert reference_choice(LABELS, ["x"], " p ") == reference_choice(LABELS, ["x"], "p")
