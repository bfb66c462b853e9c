"""Model metadata: parsing, the table (repr, magic, CLI), the kept list, modality checks, cost."""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from _env import child_environment

import reka_nb
from reka_nb import (
    AsyncRekaClient,
    BadRequestError,
    InvalidRequestError,
    Model,
    ModelInfoWarning,
    ModelList,
    RekaClient,
    Usage,
)
from reka_nb.client.sync import run_describe
from reka_nb.protocol.models import check_inputs, format_usd, parse_models
from reka_nb.testing import DEFAULT_MODELS, OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = str(ROOT / "docs" / "images" / "cat.jpeg")
FLASH_IN, FLASH_OUT = Decimal("0.0000008"), Decimal("0.000002")  # the server's example prices


def client_for(server: OfflineServer, **kw) -> RekaClient:
    return RekaClient(base_url=server.base_url, api_key=server.api_key, **kw)


def paths(server: OfflineServer) -> list[str]:
    return [r.path for r in server.requests]


# -- parsing (no I/O) -------------------------------------------------------------------------


def test_full_entry_is_read_and_kept() -> None:
    body = {
        "object": "list",
        "data": [
            {
                "id": "reka-flash",
                "name": "Reka Flash",
                "input_modalities": ["text", "image", "video"],
                "context_length": 128000,
                "max_output_length": 8192,
                "pricing": {"prompt": "0.0000008", "completion": "0.000002", "image": "0.001"},
                "supported_sampling_parameters": ["temperature", "top_p"],
                "future_field": {"kept": True},
            }
        ],
    }
    (model,) = parse_models(json.dumps(body))
    assert model == "reka-flash" and model.id == "reka-flash" and type(model.id) is str
    assert model.name == "Reka Flash"
    assert model.input_modalities == ("text", "image", "video")
    assert (model.context_length, model.max_output_length) == (128000, 8192)
    assert model.pricing == {
        "prompt": Decimal("0.0000008"),
        "completion": Decimal("0.000002"),
        "image": Decimal("0.001"),
    }
    assert (model.input_price, model.output_price) == (FLASH_IN, FLASH_OUT)
    assert model.supported_sampling_parameters == ("temperature", "top_p")
    assert model.raw["future_field"] == {"kept": True}
    assert repr(model) == (
        "Model('reka-flash', inputs=text+image+video, context=128000, per_1M=$0.80/$2.00)"
    )


def test_input_output_price_names_and_bad_values() -> None:
    with pytest.warns(ModelInfoWarning) as caught:
        (model,) = parse_models('[{"id": "m", "pricing": {"input": "1e-7", "output": "0.0000004", '
                                '"cache": "cheap", "n": -1}}]')  # fmt: skip
    assert [str(w.message) for w in caught] == [
        "model 'm': its 'cache' price is not a number (US dollars per token, from 0 to 1); "
        "it is left out, so costs of this model may be unknown",
        "model 'm': its 'n' price of -1 is out of range (US dollars per token, from 0 to 1); "
        "it is left out, so costs of this model may be unknown",
    ]
    assert (model.input_price, model.output_price) == (Decimal("1e-7"), Decimal("0.0000004"))
    assert model.pricing == {"input": Decimal("1e-7"), "output": Decimal("0.0000004")}


def test_ids_only_and_plain_lists_give_none_not_errors() -> None:
    models = parse_models('{"data": [{"id": "llava"}, "qwen", {"name": "no id"}, 7]}')
    assert models == ["llava", "qwen"]
    for model in models:
        assert model.input_modalities is None and model.pricing is None
        assert model.context_length is None and model.cost(Usage(10, 10)) is None
    assert repr(models) == "ModelList(Model('llava'), Model('qwen'))"
    assert models.table() == (
        "model  name  inputs  context  max output  $/1M in  $/1M out\n"
        "-----  ----  ------  -------  ----------  -------  --------\n"
        "llava        ?       ?        ?           ?        ?\n"
        "qwen         ?       ?        ?           ?        ?"
    )


def test_get_follows_changes_to_the_list() -> None:
    models = parse_models('["a", "b", "a"]')
    assert models.get("a") is models[0] and models.get("c") is None
    models.append(Model("c"))
    models[0] = Model("z")
    assert models.get("c") is models[3] and models.get("a") is models[2]
    del models[2]
    assert models.get("a") is None and models.get("z") is models[0]
    again = pickle.loads(pickle.dumps(models))
    assert vars(again) == {} and again == ["z", "b", "c"] and again.get("c") == "c"


def test_a_model_pickles_with_its_metadata() -> None:
    (model,) = parse_models('[{"id": "m", "pricing": {"prompt": "0.5"}, "context_length": 9}]')
    again = pickle.loads(pickle.dumps(model))
    assert again == "m" and again.pricing == {"prompt": Decimal("0.5")}
    assert again.context_length == 9


def test_cost_is_exact() -> None:
    model = Model("m", pricing={"prompt": FLASH_IN, "completion": FLASH_OUT})
    assert model.cost(Usage(812, 57)) == Decimal("0.0007636")
    assert model.cost(Usage(812, None)) is None and model.cost(None) is None
    assert Model("m", pricing={"prompt": FLASH_IN}).cost(Usage(1, 1)) is None


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0.0007636", "$0.00076"),
        ("0.00042", "$0.00042"),
        ("0.0123", "$0.012"),
        ("1.5", "$1.50"),
        ("12.345", "$12.35"),
        ("0", "$0.00"),
    ],
)
def test_format_usd(amount: str, shown: str) -> None:
    assert format_usd(Decimal(amount)) == shown


def user(*parts: dict) -> list[dict]:
    return [{"role": "user", "content": [*parts, {"type": "text", "text": "hi"}]}]


IMAGE = {"type": "image_url", "image_url": {"url": "https://x/a.jpg"}}
VIDEO = {"type": "video_url", "video_url": {"url": "https://x/a.mp4"}}


def test_check_inputs_names_the_model_and_what_it_takes() -> None:
    image_only = Model("pix", input_modalities=["text", "image"])
    text_only = Model("words", input_modalities=["text"])
    every = Model("all", input_modalities=["text", "image", "video"])
    with pytest.raises(InvalidRequestError) as info:
        check_inputs(image_only, user(VIDEO), [text_only, every])
    assert str(info.value) == (
        "model 'pix' does not take video input: it takes text and image; "
        "models that take video: all"
    )
    with pytest.raises(InvalidRequestError) as info:
        check_inputs(text_only, user(IMAGE, VIDEO))
    assert str(info.value) == "model 'words' does not take image and video input: it takes text"
    check_inputs(every, user(IMAGE, VIDEO))
    check_inputs(Model("unknown"), user(IMAGE, VIDEO))  # nothing stated: nothing refused


def test_check_inputs_counts_images_per_message() -> None:
    edge = Model("reka-edge-2603")  # a documented limit, even when the server says nothing
    assert edge.max_images == 3
    check_inputs(edge, user(IMAGE, IMAGE, IMAGE))
    with pytest.raises(InvalidRequestError) as info:
        check_inputs(edge, user(IMAGE, IMAGE, IMAGE, IMAGE))
    assert str(info.value) == (
        "model 'reka-edge-2603' takes at most 3 images in a message; message 1 has 4"
    )


# -- the client's list ------------------------------------------------------------------------


def test_models_are_model_objects_kept_for_a_while(server: OfflineServer, monkeypatch) -> None:
    with client_for(server) as client:
        models = client.models()
        assert isinstance(models, ModelList) and models == list(DEFAULT_MODELS)
        flash = models.get("reka-flash")
        assert flash is not None and flash.input_modalities == ("text", "image", "video", "audio")
        assert (flash.input_price, flash.output_price) == (FLASH_IN, FLASH_OUT)
        assert models.get("reka-flash-3").pricing is None  # the server gives no price for it
        assert client.models() is models
        assert paths(server) == ["/v1/models"]
        client.models(refresh=True)
        assert paths(server) == ["/v1/models"] * 2
        monkeypatch.setattr("reka_nb.client.model_lists.MODELS_TTL", 0.0)
        client.models()
        assert paths(server) == ["/v1/models"] * 3


def test_async_client_mirrors_the_list(server: OfflineServer) -> None:
    async def run() -> tuple[ModelList, ModelList]:
        async with AsyncRekaClient(base_url=server.base_url, api_key=server.api_key) as client:
            return await client.models(), await client.models()

    first, second = asyncio.run(run())
    assert first is second and first.get("reka-edge").context_length == 64000
    assert paths(server) == ["/v1/models"]


def test_notebook_repr_is_a_table(server: OfflineServer) -> None:
    with client_for(server) as client:
        models = client.models()
    html = models._repr_html_()
    assert html.startswith("<table class='reka-models'><caption>Prices: US dollars per million")
    assert (
        "<tr><td>reka-flash</td><td>Reka Flash</td><td>text, image, video, audio</td>"
        "<td>128,000</td><td>8,192</td><td>$0.80</td><td>$2.00</td></tr>"
    ) in html
    lines = models.table("reka-edge").splitlines()
    assert lines[0].split()[:3] == ["model", "name", "inputs"]
    assert lines[4].split()[:2] == ["reka-edge", "(default)"]
    assert lines[5].split()[-2:] == ["?", "?"]  # reka-flash-3: no price


# -- before sending ----------------------------------------------------------------------------


def test_a_refused_modality_sends_nothing(env: OfflineServer, monkeypatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    with RekaClient() as client:
        with pytest.raises(InvalidRequestError) as info:
            client.describe(CAT, model="reka-flash-3", show=False)
        assert str(info.value) == (
            "model 'reka-flash-3' does not take image input: it takes text; models that take "
            "image: reka-core, reka-flash, reka-edge, reka-edge-2603, reka-core-20240501"
        )
        assert paths(env) == ["/v1/models"]  # the lookup only: the question was not sent
        with pytest.raises(InvalidRequestError, match="at most 3 images in a message"):
            client.describe([CAT] * 4, model="reka-edge-2603", show=False)
        assert paths(env) == ["/v1/models"]


def test_a_listed_model_is_checked_even_with_the_lookup_off(
    server: OfflineServer, monkeypatch
) -> None:
    with client_for(server, model_info=False) as client:
        with pytest.raises(BadRequestError) as info:  # unknown here: sent, as before
            client.describe(CAT, model="reka-flash-3", show=False)
        assert str(info.value).startswith(
            "Reka rejected the request: Model 'reka-flash-3' does not accept image input; "
            "it accepts: text (HTTP 400, "
        )
        assert paths(server) == ["/v1/chat/completions"]
        client.models()
        with pytest.raises(InvalidRequestError, match="does not take image input"):
            client.describe(CAT, model="reka-flash-3", show=False)
        # old, but still what is known
        monkeypatch.setattr("reka_nb.client.model_lists.MODELS_TTL", 0.0)
        with pytest.raises(InvalidRequestError, match="does not take image input"):
            client.describe(CAT, model="reka-flash-3", show=False)
        assert client.describe(CAT, show=False).cost == Decimal("0.0001248")
    assert paths(server) == ["/v1/chat/completions", "/v1/models", "/v1/chat/completions"]
    assert server.requests[0].status == 400  # what the server says when asked anyway


def test_a_local_server_with_ids_only() -> None:
    with OfflineServer(model_metadata=False) as local, client_for(local) as client:
        models = client.models()
        assert models == list(DEFAULT_MODELS)
        assert all(m.input_modalities is None and m.pricing is None for m in models)
        answer = client.describe(CAT, model="reka-flash-3", show=False)  # unknown: sent
        assert answer.cost is None
        assert answer.footer().startswith("reka-flash-3 · 71 tokens in, ")
        assert "$" not in answer.footer()
        assert paths(local) == ["/v1/models", "/v1/chat/completions"]


# -- cost -------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["openai", "native"])
def test_cost_from_the_servers_usage(env: OfflineServer, monkeypatch, api: str) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    with RekaClient(api=api) as client:
        first = client.describe(CAT, "What is it?", show=False)
        second = client.describe(CAT, "And now?", model="reka-edge", show=False)
    assert paths(env)[0] == "/v1/models" and paths(env).count("/v1/models") == 1
    assert first.usage == Usage(67, 30)
    assert first.cost == 67 * FLASH_IN + 30 * FLASH_OUT == Decimal("0.0001136")
    assert first.footer().startswith("reka-flash · 67 tokens in, 30 out · $0.00011 · ")
    assert second.cost == 66 * Decimal("0.0000004") + second.usage.output_tokens * Decimal(
        "0.000001"
    )


def test_session_usage_per_model(env: OfflineServer, monkeypatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    reka_nb.answer.SESSION_USAGE.clear()
    with RekaClient() as client:
        a = client.describe(CAT, "What is it?", show=False)
        b = client.describe(CAT, "What is it?", show=False)
        c = run_describe(client, None, "Hi there!", model="reka-flash-3", max_tokens=1, show=False)
    assert c.cost is None
    totals = reka_nb.usage()
    flash, flash3 = totals.rows()
    assert (flash.model, flash.requests, flash.input_tokens) == ("reka-flash", 2, 134)
    assert flash.cost == a.cost + b.cost == Decimal("0.0002272")
    assert (flash3.model, flash3.requests, flash3.unpriced) == ("reka-flash-3", 1, 1)
    assert totals.cost == Decimal("0.0002272") and totals.unpriced == 1
    assert totals.table().splitlines() == [
        "model         answers  tokens in  tokens out  cost",
        "------------  -------  ---------  ----------  ----------------------",
        "reka-flash    2        134        60          $0.00023",
        "reka-flash-3  1        2          1           ?",
        "total         3        136        61          $0.00023 (+1 unpriced)",
    ]
    reka_nb.answer.SESSION_USAGE.clear()
    assert reka_nb.usage().table() == "No answers yet."


# -- where users meet it: magic, CLI, notebook -------------------------------------------------


def test_usage_magic(ip_shell, env: OfflineServer, capsys, monkeypatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    reka_nb.answer.SESSION_USAGE.clear()
    ip_shell.run_cell(f"%reka -i {CAT} What is it?", store_history=False)
    capsys.readouterr()
    ip_shell.run_cell("%reka usage", store_history=False)
    assert (
        capsys.readouterr().out.splitlines()[2]
        == "reka-flash  1        67         30          $0.00011"
    )
    reka_nb.answer.SESSION_USAGE.clear()


@pytest.fixture(scope="module")
def ip_shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "reka_nb")
    return shell


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:

    clean = child_environment()
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "reka_nb", *args],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_cli_models_table(server: OfflineServer) -> None:
    proc = run_cli("models", env={"REKA_BASE_URL": server.base_url, "REKA_API_KEY": server.api_key})
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "model                 name                    inputs                     "
        "context  max output  $/1M in  $/1M out"
    )
    assert lines[3] == (
        "reka-flash (default)  Reka Flash              text, image, video, audio  "
        "128,000  8,192       $0.80    $2.00"
    )
    assert len(lines) == 2 + len(DEFAULT_MODELS)


def test_notebook_shows_the_table_the_cost_and_the_usage() -> None:
    import nbformat

    from reka_nb.testing import run_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext reka_nb"),
        nbformat.v4.new_code_cell("import reka_nb\nreka_nb.models()"),
        nbformat.v4.new_code_cell(f"%%reka -i {CAT}\nWhat is it?"),
        nbformat.v4.new_code_cell("%reka usage"),
    ]
    run_notebook(nb, ROOT)
    (table,) = nb.cells[1].outputs
    assert "<td>reka-flash</td><td>Reka Flash</td>" in table.data["text/html"]
    assert table.data["text/plain"].splitlines()[0].startswith("model ")
    answer = nb.cells[2].outputs[-1].data["text/markdown"]
    assert re.search(r"\n\*reka-flash · 67 tokens in, 30 out · \$0\.00011 · \d+\.\d s\*$", answer)
    (usage,) = nb.cells[3].outputs
    assert (
        "<td>reka-flash</td><td>1</td><td>67</td><td>30</td><td>$0.00011</td>"
        in (usage.data["text/html"])
    )
