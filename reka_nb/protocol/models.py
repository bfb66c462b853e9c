"""Model metadata from ``GET /models``, prices and the inputs a model takes (no I/O).

A ``Model`` is the model's id (a ``str``, so ids compare and print as before) carrying what the
server said about it: input modalities, context length, longest answer, prices and sampling
parameters. A field the server left out is ``None``: local OpenAI-compatible servers return
only ids. Prices are US dollars per token, read from decimal strings into ``Decimal`` so that
costs add up exactly; their field names are not settled, so ``prompt``/``completion`` and
``input``/``output`` are both read, and other price fields are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .._exceptions import InvalidRequestError
from .stream import MalformedEvent, Usage, load_json

__all__ = [
    "MEDIA_PARTS",
    "Model",
    "ModelList",
    "check_inputs",
    "format_usd",
    "parse_models",
]

MEDIA_PARTS = {"image_url": "image", "video_url": "video", "audio_url": "audio", "pdf_url": "pdf"}
"""Content part types and the input modality each one needs."""

KNOWN_MAX_IMAGES = {"reka-edge-2603": 3}
"""Documented per-message image limits, for servers that do not state one."""

_PRICE_IN = ("prompt", "input")
_PRICE_OUT = ("completion", "output")
_MILLION = Decimal(1_000_000)


class Model(str):
    """A model id with the server's description of the model (``None`` where it said nothing)."""

    name: str | None
    description: str | None
    owned_by: str | None
    created: int | None
    input_modalities: tuple[str, ...] | None
    output_modalities: tuple[str, ...] | None
    context_length: int | None
    max_output_length: int | None
    pricing: dict[str, Decimal] | None
    supported_sampling_parameters: tuple[str, ...] | None
    max_images: int | None
    raw: dict[str, Any]

    def __new__(
        cls,
        id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        owned_by: str | None = None,
        created: int | None = None,
        input_modalities: Sequence[str] | None = None,
        output_modalities: Sequence[str] | None = None,
        context_length: int | None = None,
        max_output_length: int | None = None,
        pricing: Mapping[str, Decimal] | None = None,
        supported_sampling_parameters: Sequence[str] | None = None,
        max_images: int | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> Model:
        self = super().__new__(cls, id)
        self.name = name
        self.description = description
        self.owned_by = owned_by
        self.created = created
        self.input_modalities = None if input_modalities is None else tuple(input_modalities)
        self.output_modalities = None if output_modalities is None else tuple(output_modalities)
        self.context_length = context_length
        self.max_output_length = max_output_length
        self.pricing = None if pricing is None else dict(pricing)
        self.supported_sampling_parameters = (
            None if supported_sampling_parameters is None else tuple(supported_sampling_parameters)
        )
        self.max_images = KNOWN_MAX_IMAGES.get(id) if max_images is None else max_images
        self.raw = dict(raw) if raw is not None else {"id": id}
        return self

    @classmethod
    def from_json(cls, item: Any) -> Model | None:
        """A model from one entry of the list; None when it has no usable id."""
        if isinstance(item, str):
            return cls(item) if item else None
        if not isinstance(item, Mapping):
            return None
        ident = item.get("id")
        if not isinstance(ident, str) or not ident:
            return None
        return cls(
            ident,
            name=_text(item.get("name")),
            description=_text(item.get("description")),
            owned_by=_text(item.get("owned_by")),
            created=_count(item.get("created"), zero=True),
            input_modalities=_names(item.get("input_modalities")),
            output_modalities=_names(item.get("output_modalities")),
            context_length=_count(item.get("context_length")),
            max_output_length=_count(item.get("max_output_length")),
            pricing=_prices(item.get("pricing")),
            supported_sampling_parameters=_names(item.get("supported_sampling_parameters")),
            max_images=_count(item.get("max_images")),
            raw=item,
        )

    @property
    def id(self) -> str:
        """The value to pass as ``model``."""
        return str.__str__(self)

    @property
    def supported_parameters(self) -> tuple[str, ...] | None:
        """The request parameters the entry says the model takes (None: it does not say)."""
        return _names(self.raw.get("supported_parameters"))

    @property
    def takes_response_format(self) -> bool | None:
        """Whether the entry lists ``response_format``; None when it lists no parameters."""
        names = self.supported_parameters
        return None if names is None else "response_format" in names

    @property
    def input_price(self) -> Decimal | None:
        """US dollars per input (prompt) token, when the server said."""
        return _first(self.pricing, _PRICE_IN)

    @property
    def output_price(self) -> Decimal | None:
        """US dollars per output (completion) token, when the server said."""
        return _first(self.pricing, _PRICE_OUT)

    def cost(self, usage: Usage | None) -> Decimal | None:
        """US dollars for these tokens (exact), or None when tokens or prices are unknown."""
        if usage is None or usage.input_tokens is None or usage.output_tokens is None:
            return None
        inp, out = self.input_price, self.output_price
        if inp is None or out is None:
            return None
        return usage.input_tokens * inp + usage.output_tokens * out

    def takes(self, modality: str) -> bool | None:
        """Whether the model takes this kind of input; None when the server did not say."""
        if self.input_modalities is None:
            return None
        return modality in self.input_modalities

    def __repr__(self) -> str:
        fields = [repr(self.id)]
        if self.input_modalities is not None:
            fields.append(f"inputs={'+'.join(self.input_modalities)}")
        if self.context_length is not None:
            fields.append(f"context={self.context_length}")
        if self.input_price is not None and self.output_price is not None:
            fields.append(
                f"per_1M=${_per_million(self.input_price)}/${_per_million(self.output_price)}"
            )
        return f"Model({', '.join(fields)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.raw,))

    def row(self) -> list[str]:
        """The model's cells in the table (see ``ModelList.COLUMNS``)."""
        return [
            self.id,
            self.name or "",
            ", ".join(self.input_modalities) if self.input_modalities is not None else "?",
            _thousands(self.context_length),
            _thousands(self.max_output_length),
            _price_cell(self.input_price),
            _price_cell(self.output_price),
        ]


def _rebuild(raw: Mapping[str, Any]) -> Model:
    model = Model.from_json(raw)
    assert model is not None
    return model


class ModelList(list):  # type: ignore[type-arg]
    """The models a key can use: a list of ``Model`` shown as a table in notebooks."""

    COLUMNS = ("model", "name", "inputs", "context", "max output", "$/1M in", "$/1M out")

    def get(self, model_id: str) -> Model | None:  # type: ignore[override]
        """The model with this id, or None."""
        for model in self:
            if model == model_id:
                return model  # type: ignore[no-any-return]
        return None

    @property
    def ids(self) -> list[str]:
        return [model.id for model in self]

    def to_json(self) -> list[dict[str, Any]]:
        """The entries as the server sent them (every field, unknown ones too)."""
        return [dict(model.raw) for model in self]

    def table(self, default: str | None = None) -> str:
        """A plain-text table; ``default`` marks that model."""
        rows = [list(self.COLUMNS)] + [self._marked(m, default) for m in self]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.COLUMNS))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def html(self, default: str | None = None) -> str:
        import html  # a table's markup only: not with import reka_nb

        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.COLUMNS)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(c)}</td>" for c in self._marked(m, default))
            + "</tr>"
            for m in self
        )
        note = (
            "<caption>Prices: US dollars per million tokens, as the server states them.</caption>"
        )
        return (
            f"<table class='reka-models'>{note}<thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )

    @staticmethod
    def _marked(model: Model, default: str | None) -> list[str]:
        row = model.row()
        if model == default:
            row[0] += " (default)"
        return row

    def __repr__(self) -> str:
        return f"ModelList({', '.join(repr(m) for m in self)})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.table())

    def _repr_html_(self) -> str:
        return self.html()


def parse_models(body: bytes | str) -> ModelList:
    """The models of ``GET /models``: OpenAI's ``{"data": [...]}`` or a plain list."""
    data = load_json(body, "the model list")
    if isinstance(data, dict):
        data = data.get("data", data.get("models"))
    if not isinstance(data, list):
        raise MalformedEvent("the model list was neither a list nor {'data': [...]}")
    return ModelList(m for m in map(Model.from_json, data) if m is not None)


def input_kinds(messages: Iterable[Mapping[str, Any]]) -> tuple[set[str], list[int]]:
    """The input modalities the messages need, and the image count of each message."""
    kinds: set[str] = set()
    images: list[int] = []
    for message in messages:
        content = message.get("content")
        count = 0
        if isinstance(content, str):
            kinds.add("text")
        elif isinstance(content, (list, tuple)):
            for part in content:
                kind = part.get("type") if isinstance(part, Mapping) else None
                if kind == "text":
                    kinds.add("text")
                elif kind in MEDIA_PARTS:
                    kinds.add(MEDIA_PARTS[kind])
                    count += kind == "image_url"
        images.append(count)
    return kinds, images


def check_inputs(
    model: Model, messages: Iterable[Mapping[str, Any]], others: Sequence[Model] = ()
) -> None:
    """Refuse, before sending, an input the model does not take (InvalidRequestError).

    Nothing is refused for what the server did not state. ``others`` (the rest of the list)
    names the models that would take the input.
    """
    kinds, images = input_kinds(messages)
    if model.input_modalities is not None:
        missing = sorted(k for k in kinds if k not in model.input_modalities)
        if missing:
            takes = _join(list(model.input_modalities)) or "nothing it stated"
            able = [m.id for m in others if all(m.takes(k) for k in missing)]
            hint = f"; models that take {_join(missing)}: {', '.join(able)}" if able else ""
            raise InvalidRequestError(
                f"model {model.id!r} does not take {_join(missing)} input: it takes {takes}{hint}"
            )
    if model.max_images is not None:
        for number, count in enumerate(images, 1):
            if count > model.max_images:
                raise InvalidRequestError(
                    f"model {model.id!r} takes at most {model.max_images} images in a message; "
                    f"message {number} has {count}"
                )


def format_usd(amount: Decimal) -> str:
    """A cost for people: two significant digits, at least cents (``$0.00042``, ``$1.50``)."""
    if amount == 0:
        return "$0.00"
    places = max(2, 1 - amount.adjusted())
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"${rounded:f}"


def _per_million(price: Decimal) -> str:
    value = (price * _MILLION).normalize()
    text = f"{value:f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _price_cell(price: Decimal | None) -> str:
    return "?" if price is None else "$" + _per_million(price)


def _thousands(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _first(pricing: Mapping[str, Decimal] | None, names: Sequence[str]) -> Decimal | None:
    if not pricing:
        return None
    for name in names:
        if name in pricing:
            return pricing[name]
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any, zero: bool = False) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value > 0 or (zero and value == 0) else None


def _names(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(v for v in value if isinstance(v, str) and v)


def _prices(value: Any) -> dict[str, Decimal] | None:
    """Per-token prices; decimal strings (numbers are read through their text), others dropped."""
    if not isinstance(value, Mapping):
        return None
    prices: dict[str, Decimal] = {}
    for name, price in value.items():
        if isinstance(price, bool) or not isinstance(price, (str, int, float)):
            continue
        try:
            amount = Decimal(str(price).strip())
        except InvalidOperation:
            continue
        if amount.is_finite() and amount >= 0:
            prices[str(name)] = amount
    return prices
