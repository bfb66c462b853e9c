"""The ``reka-nb`` command: describe images and list models, streaming to the terminal.

``reka-nb describe --each photos/`` asks about each image on its own (folders and globs are
expanded): a progress bar on stderr and one JSON line per answer, written as each finishes.
``reka-nb compare photos/ -p "Damaged?" --models reka-flash,reka-edge`` asks several models the
same question about each image and prints a summary per model (answered, failed, cost, seconds,
tokens, and accuracy with ``--truth labels.csv`` or agreement with ``--labels``/``--schema``);
``--csv FILE`` writes every answer, a row per image and model.
``reka-nb cache info|clear`` shows or empties the answer cache.

``--schema FILE.json|"caption, people int"`` or ``--labels a,b,c`` ask for a structured
answer: ``--json`` and the JSON lines of ``--each`` carry its fields (a field named like one of
the line's own keys is ``field_<name>``), and ``--csv FILE`` (with ``--each``) writes one
column per field beside the usual ones.

Exit status: 0 on success, 1 when the API or the connection fails (with --each: when any item
failed, after finishing the rest), 2 for a usage or input error (bad option, bad image, no
key), 130 when interrupted, 141 when the reader of the output went away (``| head``), like
any Unix tool. Errors go to stderr as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import Coroutine, Sequence
from os.path import expanduser
from typing import Any, TextIO, TypeVar

from . import cache as answer_cache
from ._exceptions import (
    APIError,
    ConfigurationError,
    ImageError,
    InvalidRequestError,
    MissingAPIKeyError,
    RekaError,
    StreamInterrupted,
)
from ._version import __version__
from .answer import DEFAULT_PROMPT, StdoutPresenter
from .batch import Result, TerminalProgress, adescribe_many
from .batch.options import closest as _closest
from .batch.options import params_from
from .batch.sources import expand
from .client.settings import model_info_wanted
from .client.sync import RekaClient, run_describe
from .client.transports import TRANSPORTS, check_transport

__all__ = ["main"]

_T = TypeVar("_T")

_INPUT_ERRORS = (ImageError, InvalidRequestError, ConfigurationError)
_NO_KEY = (
    "no Reka API key: set the REKA_API_KEY environment variable (keys are made at "
    "https://platform.reka.ai), or add --offline to try the built-in offline server, "
    "which runs no model"
)
#: ``--jsonl`` given without its file name.
_NO_FILE = ""
#: The status a shell reports for a command ended by SIGPIPE (128 + 13).
BROKEN_PIPE = 141


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command's parser, and each subcommand's (to report a mistake with its usage)."""
    parser = argparse.ArgumentParser(
        prog="reka-nb",
        description="Ask Reka's vision models about images. The key comes from REKA_API_KEY.",
    )
    parser.add_argument("--version", action="version", version=f"reka-nb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--offline",
        action="store_true",
        help="use the built-in offline server (no key, no network; it runs no model)",
    )
    common.add_argument("--api", choices=("openai", "native"), help="endpoint (default openai)")
    common.add_argument("--json", action="store_true", help="print one JSON object")

    d = sub.add_parser(
        "describe", parents=[common], help="describe one or more images", description=None
    )
    d.add_argument(
        "images", nargs="+", metavar="IMAGE", help="a path, an https:// URL or a data: URL"
    )
    d.add_argument("-p", "--prompt", default=DEFAULT_PROMPT, help=f"default: {DEFAULT_PROMPT!r}")
    d.add_argument("-m", "--model", help="model id (default: REKA_MODEL or reka-flash)")
    d.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    d.add_argument("--max-tokens", type=int, metavar="N")
    d.add_argument("-t", "--temperature", type=float, metavar="T")
    d.add_argument("--top-p", type=float, metavar="P")
    d.add_argument("--seed", type=int)
    d.add_argument("--stop", action="append", metavar="TEXT", help="stop sequence (repeatable)")
    d.add_argument(
        "--keep-metadata",
        action="store_true",
        help="send images with their metadata (EXIF, GPS position, XMP), dropped by default",
    )
    d.add_argument(
        "--each",
        action="store_true",
        help="ask about each image on its own (folders and globs expand); one JSON line each",
    )
    d.add_argument(
        "--jsonl",
        nargs="?",
        const=_NO_FILE,
        metavar="FILE",
        help="with --each: write the lines to FILE (- for standard output)",
    )
    d.add_argument(
        "--schema",
        metavar="SCHEMA",
        help='a structured answer: a JSON Schema file (.json) or fields, "caption, people int"',
    )
    d.add_argument("--labels", metavar="A,B,C", help="answer with one of these labels")
    d.add_argument(
        "--multi-label", action="store_true", help="with --labels: any number of the labels"
    )
    d.add_argument("--schema-retries", type=int, default=1, metavar="N", help="repairs (1)")
    d.add_argument(
        "--csv", metavar="FILE", help="with --each: write a CSV table, one column per field"
    )
    d.add_argument("--concurrency", type=int, default=8, metavar="N", help="with --each (8)")
    d.add_argument("--rpm", type=float, metavar="N", help="with --each: requests a minute, at most")
    d.add_argument("--retries", type=int, default=2, metavar="N", help="with --each (default 2)")
    d.add_argument(
        "--transport",
        metavar="{" + ",".join(TRANSPORTS) + "}",
        help="with --each: the connection pool (default auto: aiohttp when reka-nb[fast] is in)",
    )
    d.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reuse stored answers to the same question (default: on with --each, else off)",
    )

    k = sub.add_parser(
        "compare",
        parents=[common],
        help="ask several models about the same images; print a summary per model",
    )
    k.add_argument("images", nargs="+", metavar="IMAGE", help="a folder, a glob or files")
    k.add_argument("-p", "--prompt", default=DEFAULT_PROMPT, help=f"default: {DEFAULT_PROMPT!r}")
    k.add_argument(
        "--models", required=True, metavar="A,B", help="the models to compare (two or more)"
    )
    k.add_argument("--labels", metavar="A,B,C", help="answer with one of these labels")
    k.add_argument(
        "--schema",
        metavar="SCHEMA",
        help='a structured answer: a JSON Schema file (.json) or fields, "caption, people int"',
    )
    k.add_argument(
        "--multi-label", action="store_true", help="with --labels: any number of the labels"
    )
    k.add_argument("--schema-retries", type=int, default=1, metavar="N", help="repairs (1)")
    k.add_argument(
        "--truth", metavar="FILE.csv", help="the right answers: a CSV with image,label columns"
    )
    k.add_argument("--field", metavar="NAME", help="the schema field to score (--schema)")
    k.add_argument("--csv", metavar="FILE", help="write every answer: a row per image and model")
    k.add_argument("--concurrency", type=int, default=8, metavar="N", help="default 8")
    k.add_argument("--rpm", type=float, metavar="N", help="requests a minute, at most")
    k.add_argument("--max-cost", metavar="USD", help="stop starting requests past this cost")
    k.add_argument("--retries", type=int, default=2, metavar="N", help="default 2")
    k.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse stored answers to the same question (default: on)",
    )

    m = sub.add_parser(
        "models",
        parents=[common],
        help="the models the key can use: inputs, context, prices (--json: as the server said)",
    )
    c = sub.add_parser("cache", help="show where the answer cache is, or empty it")
    c.add_argument("action", choices=("info", "clear"))
    return parser, {"describe": d, "compare": k, "models": m, "cache": c}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; an unknown option is reported with its subcommand's usage, and a near miss
    names the option meant."""
    parser, commands = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = commands[args.command]
        known = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
        message = f"unrecognized arguments: {' '.join(extra)}"
        hints = [
            hint
            for word in extra
            if word.startswith("--") and (hint := _closest(word.split("=", 1)[0], known))
        ]
        if hints:
            message += f" (did you mean {' or '.join(hints)}?)"
        command.error(message)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parse(argv)
    try:
        try:
            return _run(args)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below
    except BrokenPipeError:
        # The reader stopped reading (``| head``): stop quietly. Python would flush stdout
        # again at exit and complain, so point it at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE
    except KeyboardInterrupt:
        print("\nreka-nb: interrupted", file=sys.stderr)
        return 130
    except StreamInterrupted as exc:
        print(f"\nreka-nb: error: {exc}", file=sys.stderr)
        return 1
    except MissingAPIKeyError:
        print(f"reka-nb: error: {_NO_KEY}", file=sys.stderr)
        return 2
    except _INPUT_ERRORS as exc:
        print(f"reka-nb: error: {exc}{_prompt_hint(args, exc)}", file=sys.stderr)
        return 2
    except RekaError as exc:
        kind = type(exc).__name__ if isinstance(exc, APIError) else "error"
        print(f"reka-nb: {kind}: {exc}", file=sys.stderr)
        return 1


def _prompt_hint(args: argparse.Namespace, exc: Exception) -> str:
    """For ``describe cat.png "What is it?"``: the question was taken for an image; for
    ``describe photos/``: a folder is asked about with --each."""
    if args.command != "describe" or not isinstance(exc, ImageError):
        return ""
    folders = [text for text in args.images if os.path.isdir(expanduser(text))]
    if folders and not args.each:
        return f"; to ask about each image in it, add --each: reka-nb describe --each {folders[0]}"
    for text in args.images:
        looks_like_words = " " in text.strip() or text.rstrip().endswith("?")
        if looks_like_words and "://" not in text and not os.path.exists(text):
            return (
                f"; to ask a question, pass it with -p: -p {json.dumps(text, ensure_ascii=False)}"
            )
    return ""


def _run(args: argparse.Namespace) -> int:
    if args.command == "cache":
        return _cache(args.action)
    if args.command == "describe":
        _check_describe(args)
    if args.offline:
        from .client.offline_mode import use_offline_server

        use_offline_server()
    if args.command == "compare":
        return _compare(args)
    with RekaClient(api=args.api, model_info=_model_info()) as client:
        if args.command == "models":
            models = client.models()
            if args.json:  # every field as the server sent it
                print(json.dumps(models.to_json(), ensure_ascii=False))
            else:
                print(models.table(client.settings().model))
            return 0
        params = params_from(args)
        params.update(_schema_options(args))
        if args.each:
            return _describe_each(args, client, params)
        show = False if args.json else StdoutPresenter()
        image: Any = args.images if len(args.images) > 1 else args.images[0]
        result = run_describe(
            client,
            image,
            args.prompt,
            model=args.model,
            stream=not args.no_stream,
            show=show,
            cache=bool(args.cache),
            keep_metadata=args.keep_metadata,
            **params,
        )
        if args.json:
            usage = result.usage
            print(
                json.dumps(
                    {
                        "text": result.text,
                        "model": result.model,
                        "finish_reason": result.finish_reason,
                        "usage": None
                        if usage is None
                        else {
                            "input_tokens": usage.input_tokens,
                            "output_tokens": usage.output_tokens,
                        },
                        "request_id": result.request_id,
                        "seconds": round(result.elapsed or 0.0, 3),
                        "cached": result.cached,
                        **_fields(result, params.get("schema")),
                    },
                    ensure_ascii=False,
                )
            )
        return 0


def _model_info() -> bool:
    """Whether the command looks the model list up (on disk, else ``GET /models``): only
    when ``REKA_NB_MODEL_INFO=on`` is set, since one question is otherwise one request. With
    it, a model that takes no images is refused before anything is sent, as describe()
    refuses it."""
    return bool(os.environ.get("REKA_NB_MODEL_INFO", "").strip()) and model_info_wanted()


def _check_describe(args: argparse.Namespace) -> None:
    """Options that do not go together, and --each paths that are not there: before any
    request, with a usage error (exit 2)."""
    if args.jsonl == _NO_FILE:
        raise InvalidRequestError(
            "--jsonl needs the name of the file to write the lines to (or - for standard output)"
        )
    if not args.each:
        for option in ("jsonl", "rpm", "csv", "transport"):
            if getattr(args, option) is not None:
                raise InvalidRequestError(f"--{option} goes with --each")
        return
    try:
        check_transport(args.transport, "--transport")
    except ConfigurationError as exc:
        raise InvalidRequestError(str(exc)) from None
    if args.json:
        raise InvalidRequestError(
            "--json prints one answer as a JSON object; --each already prints each answer as a "
            "JSON line (--jsonl FILE writes them to a file)"
        )
    for value in args.images:
        is_url = "://" in value or value[:5].lower() == "data:"
        if not (is_url or any(c in value for c in "*?[") or os.path.exists(expanduser(value))):
            raise ImageError(
                f"no such file or folder: {value!r} (current directory: {os.getcwd()})"
            )


def _schema_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--schema``, ``--labels``, ``--multi-label``, ``--schema-retries`` as describe()'s
    options; the schema made now, so an unusable one stops the command before anything."""
    if args.schema is None and args.labels is None and not args.multi_label:
        return {}
    from .client.structured import schema_of

    schema: Any = args.schema
    if schema is not None and (schema.endswith(".json") or os.path.isfile(schema)):
        try:
            with open(schema, encoding="utf-8") as file:
                schema = json.load(file)
        except OSError as exc:
            raise ConfigurationError(f"--schema {args.schema}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigurationError(f"--schema {args.schema} is not JSON: {exc}") from None
    labels = None
    if args.labels is not None:
        labels = [label.strip() for label in args.labels.split(",")]
    options = {
        "schema": schema,
        "labels": labels,
        "multi_label": args.multi_label,
        "schema_retries": args.schema_retries,
    }
    made, _ = schema_of(dict(options))
    return {"schema": made, "schema_retries": args.schema_retries}


def _fields(result: Any, schema: Any) -> dict[str, Any]:
    """A structured answer's fields for ``--json`` (a field named like a key: field_<name>)."""
    if schema is None:
        return {}
    from .batch.columns import field_values

    keys = {"text", "model", "finish_reason", "usage", "request_id", "seconds", "cached"}
    values = field_values(schema, result.data)
    return {f"field_{k}" if k in keys else k: v for k, v in values.items()}


class _Lines(TerminalProgress):
    """The progress bar on stderr, and each answer as a JSON line the moment it finishes."""

    def __init__(self, out: TextIO, schema: Any = None) -> None:
        super().__init__()
        self._out = out
        self._schema = schema

    def update(self, result: Result) -> None:
        line = {"index": result.index, **result.record(self._schema)}
        self._out.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._out.flush()  # a run that is killed keeps every line it finished
        super().update(result)


def _describe_each(args: argparse.Namespace, client: RekaClient, params: dict[str, Any]) -> int:
    images = [item for value in args.images for item, _ in expand(value)]
    out: TextIO = sys.stdout
    if args.jsonl not in (None, "-"):
        out = open(args.jsonl, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        results = _until_interrupted(
            adescribe_many(
                images,
                args.prompt,
                model=args.model,
                concurrency=args.concurrency,
                requests_per_minute=args.rpm,
                cache=args.cache is not False,
                show=_Lines(out, params.get("schema")),
                client=client,
                retries=args.retries,
                stream=False,  # nobody reads a batch word by word: whole answers cost less
                keep_metadata=args.keep_metadata,
                transport=args.transport,
                **params,
            )
        )
    finally:
        if out is not sys.stdout:
            out.close()
    if args.csv:
        _write_csv(args.csv, results.records())
    for failed in results.errors:
        print(f"reka-nb: {failed.source}: {failed.record()['error']}", file=sys.stderr)
    return 1 if results.errors else 0


def _compare(args: argparse.Namespace) -> int:
    """``reka-nb compare``: the summary table (``--json``: its rows as JSON) on stdout, the
    progress bar on stderr; a stop prints the summary of what finished, then exits 130."""
    from .batch.compare import check_models, compare

    models = check_models(args.models)
    images = [item for value in args.images for item, _ in expand(value)]
    options = _schema_options(args)
    if args.field is not None:
        options["field"] = args.field
    with RekaClient(api=args.api) as client:
        try:
            comparison = compare(
                images,
                args.prompt,
                models=models,
                truth=args.truth,
                concurrency=args.concurrency,
                requests_per_minute=args.rpm,
                max_cost=args.max_cost,
                cache=args.cache,
                show=TerminalProgress(),
                client=client,
                retries=args.retries,
                **options,
            )
        except KeyboardInterrupt as exc:
            partial = getattr(exc, "results", None)
            if partial is not None:
                _print_comparison(args, partial)
            raise
    _print_comparison(args, comparison)
    failed = 0
    for model, results in comparison.results.items():
        for row in results.errors:
            failed += 1
            print(f"reka-nb: {row.source}: {model}: {row.record()['error']}", file=sys.stderr)
    return 1 if failed else 0


def _print_comparison(args: argparse.Namespace, comparison: Any) -> None:
    if args.csv:
        _write_csv(args.csv, comparison.records())
    if args.json:  # NaN (no price, nothing asked) as null
        rows = [
            {k: _json_number(v) for k, v in row.items()} for row in comparison.summary_records()
        ]
        print(json.dumps(rows, ensure_ascii=False))
    else:
        if comparison.stopped:
            print(f"stopped: {comparison.stopped}", file=sys.stderr)
        print(comparison.table())


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


def _until_interrupted(work: Coroutine[Any, Any, _T]) -> _T:
    """Run ``work`` on a new event loop. Ctrl-C cancels it at its next ``await`` and is then
    raised as ``KeyboardInterrupt``: an answer is never stopped between being written out and
    being stored. A second Ctrl-C stops at once."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(work)
    stopping: list[int] = []

    def on_interrupt(signum: int, frame: Any) -> None:
        if stopping:
            raise KeyboardInterrupt
        stopping.append(signum)
        loop.call_soon_threadsafe(task.cancel)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if main_thread else None
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if stopping:
            raise KeyboardInterrupt from None
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        # As asyncio.run does: the worker threads still preparing an image or writing the
        # cache finish before the interpreter exits (one left running can crash it).
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _write_csv(path: str, records: list[dict[str, Any]]) -> None:
    """The run's table as CSV: one column per field beside the usual ones; lists and objects
    as JSON text, a missing value empty."""
    import csv

    with open(path, "w", encoding="utf-8", newline="") as file:
        if not records:
            return
        writer = csv.DictWriter(file, fieldnames=list(records[0]))
        writer.writeheader()
        for record in records:
            writer.writerow({k: _cell(v) for k, v in record.items()})


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def _cache(action: str) -> int:
    if action == "clear":
        count = answer_cache.clear()
        print(f"Deleted {count:,} stored answers.")
    else:
        print(answer_cache.info())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
