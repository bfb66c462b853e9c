"""The ``reka-nb`` command: describe images and list models, streaming to the terminal.

Exit status: 0 on success, 1 when the API or the connection fails, 2 for a usage or input
error (bad option, bad image, no key). Errors go to stderr as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ._answer import DEFAULT_PROMPT, StdoutPresenter
from ._ask import run_describe
from ._exceptions import (
    APIError,
    ConfigurationError,
    ImageError,
    InvalidRequestError,
    RekaError,
    StreamInterrupted,
)

__all__ = ["main"]

_INPUT_ERRORS = (ImageError, InvalidRequestError, ConfigurationError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reka-nb",
        description="Ask Reka's vision models about images. The key comes from REKA_API_KEY.",
    )
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
    d.add_argument("images", nargs="+", metavar="IMAGE", help="path or http(s)/data: URL")
    d.add_argument("-p", "--prompt", default=DEFAULT_PROMPT, help=f"default: {DEFAULT_PROMPT!r}")
    d.add_argument("-m", "--model", help="model id (default: REKA_MODEL or reka-flash)")
    d.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    d.add_argument("--max-tokens", type=int, metavar="N")
    d.add_argument("-t", "--temperature", type=float, metavar="T")
    d.add_argument("--top-p", type=float, metavar="P")
    d.add_argument("--seed", type=int)
    d.add_argument("--stop", action="append", metavar="TEXT", help="stop sequence (repeatable)")

    sub.add_parser(
        "models",
        parents=[common],
        help="the models the key can use: inputs, context, prices (--json: as the server said)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\nreka-nb: interrupted", file=sys.stderr)
        return 130
    except StreamInterrupted as exc:
        print(f"\nreka-nb: error: {exc}", file=sys.stderr)
        return 1
    except _INPUT_ERRORS as exc:
        print(f"reka-nb: error: {exc}", file=sys.stderr)
        return 2
    except RekaError as exc:
        kind = type(exc).__name__ if isinstance(exc, APIError) else "error"
        print(f"reka-nb: {kind}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from ._client import RekaClient

    if args.offline:
        from ._offline import use_offline_server

        use_offline_server()
    with RekaClient(api=args.api, model_info=False) as client:  # one question: no extra request
        if args.command == "models":
            models = client.models()
            if args.json:  # every field as the server sent it
                print(json.dumps(models.to_json(), ensure_ascii=False))
            else:
                print(models.table(client.settings().model))
            return 0
        params: dict[str, Any] = {
            "max_tokens": args.max_tokens,
            "temperature": args.temperature,
            "top_p": args.top_p,
            "seed": args.seed,
            "stop": args.stop,
        }
        show = False if args.json else StdoutPresenter()
        image: Any = args.images if len(args.images) > 1 else args.images[0]
        result = run_describe(
            client,
            image,
            args.prompt,
            model=args.model,
            stream=not args.no_stream,
            show=show,
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
                    },
                    ensure_ascii=False,
                )
            )
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
