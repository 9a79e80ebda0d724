"""The ``shim`` command: ``shim serve`` and ``shim check``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from shim.config import ConfigError
from shim.loader import load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shim", description="OpenAI-compatible server for Hugging Face inference backends."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", default=os.environ.get("SHIM_CONFIG"), help="config file (TOML)")
    serve.add_argument("--host", help="listen address (default: [server] host)")
    serve.add_argument("--port", type=int, help="listen port (default: [server] port)")
    serve.add_argument("--workers", type=int, help="worker processes (default: [server] workers)")
    check = commands.add_parser("check", help="validate a config and print the routing table")
    check.add_argument("--config", default=os.environ.get("SHIM_CONFIG"), help="config file (TOML)")
    return parser


def _check(path: str) -> int:
    from shim.providers import describe_cached
    from shim.routing import Router

    try:
        config = load_config(path)
        router = Router(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: OK, {len(router.routes)} models")
    for route in router.routes.values():
        key = route.provider_key
        print(f"  {route.describe(provider_id=describe_cached(key) if key else None)}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from shim import workers
    from shim.routing import Router

    try:
        config = load_config(args.config)
        Router(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    server = config.server
    count = args.workers or server.workers
    os.environ["SHIM_CONFIG"] = os.path.abspath(args.config)
    metrics_dir = None
    if count > 1:
        # Every worker writes its metrics here; /metrics in any worker aggregates them all.
        metrics_dir = tempfile.mkdtemp(prefix="shim-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return workers.serve(
            workers.uvicorn_config(
                server, host=args.host or server.host, port=args.port or server.port, workers=count
            )
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.config:
        print("error: no config: pass --config PATH or set SHIM_CONFIG", file=sys.stderr)
        return 1
    if args.command == "check":
        return _check(args.config)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
