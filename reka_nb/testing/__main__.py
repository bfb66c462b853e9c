"""``python -m reka_nb.testing``: run the offline server until Ctrl-C."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence

from ._server import TEST_API_KEY, OfflineServer


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, print how to point a client at it, and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m reka_nb.testing",
        description="Run reka_nb's offline Reka API server (no model runs; answers say so).",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds between streamed events (default: 0)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each answer starts (default: 0)"
    )
    parser.add_argument(
        "--rpm", type=float, help="requests a minute allowed; more get 429 (default: no limit)"
    )
    parser.add_argument(
        "--credits", type=int, help="answers the account can pay for; then 429 (default: no end)"
    )
    parser.add_argument(
        "--key", default=TEST_API_KEY, help="API key the server accepts (default: the test key)"
    )
    args = parser.parse_args(argv)
    server = OfflineServer(
        api_key=args.key,
        token_delay=args.delay,
        host=args.host,
        port=args.port,
        latency=args.latency,
        requests_per_minute=args.rpm,
        credits=args.credits,
    )
    server.start()
    # The default key is the offline server's own, public test key; a key given with --key
    # is not printed.
    key = TEST_API_KEY if args.key == TEST_API_KEY else "<the key given with --key>"
    print(f"reka_nb offline server running at {server.base_url}", flush=True)
    print(f"export REKA_BASE_URL={server.base_url}", flush=True)
    print(f"export REKA_API_KEY={key}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
