"""``python -m reka_nb.offline``: run the offline server until Ctrl-C."""

from __future__ import annotations

import argparse
import ipaddress
import sys
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
    parser.add_argument(
        "--varied-choices",
        action="store_true",
        help="models pick labels by the offline rule, so they disagree (default: the first)",
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
        varied_choices=args.varied_choices,
    )
    try:
        server.start()
    except OSError as exc:  # a busy port, an address not on this machine
        where = f"{args.host}:{args.port}"
        print(
            f"{parser.prog}: error: cannot listen on {where}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    # The default key is the offline server's own, public test key; a key given with --key
    # is not printed.
    key = TEST_API_KEY if args.key == TEST_API_KEY else "<the key given with --key>"
    url = client_url(args.host, server.port) or server.base_url
    print(f"reka_nb offline server running at {url}", flush=True)
    if client_url(args.host, server.port) is None:
        print(
            "Note: reka_nb sends a key over plain http only to a loopback address "
            "(127.0.0.1, localhost, ::1), so its clients refuse this URL; bind --host 0.0.0.0 "
            "to serve this machine's loopback address too.",
            flush=True,
        )
    print(f"export REKA_BASE_URL={url}", flush=True)
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


def client_url(host: str, port: int) -> str | None:
    """The base URL a client on this machine uses: a loopback address for a loopback or
    wildcard bind (``0.0.0.0`` is where a server listens, not an address to connect to);
    None for another address, which reka_nb's clients refuse over plain http."""
    if host in ("", "0.0.0.0", "localhost"):
        return f"http://127.0.0.1:{port}/v1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_loopback:
        return f"http://{host}:{port}/v1" if address.version == 4 else f"http://[{host}]:{port}/v1"
    return None


if __name__ == "__main__":
    raise SystemExit(main())
