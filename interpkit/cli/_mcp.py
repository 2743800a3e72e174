"""``interpkit mcp``: serve interpkit's core functions to agents as MCP tools over stdio.

The server is the MCP SDK's ``FastMCP`` (the ``agent`` extra: ``pip install "interpkit[agent]"``)
with one tool per entry of `interpkit.cli._mcp_tools.TOOLS`. A tool runs in a worker thread, so a
long ``inspect`` does not stall the protocol (pings, cancellation, other requests). Clients launch
it as a subprocess, e.g. in an MCP client config: ``{"command": "interpkit", "args": ["mcp"]}``.

Example (in-process, as the tests do):
    >>> from interpkit.cli._mcp import build_server  # doctest: +SKIP
    >>> server = build_server()  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

HELP = "serve interpkit's functions (inspect, rank, explain, match, capabilities) as MCP tools over stdio"

SERVER_NAME = "interpkit"
INSTRUCTIONS = (
    "interpkit ranks and explains the features of a language model that carry a criterion. "
    "Call `capabilities` first for every command, argument and file format. Tools take paths on "
    "this machine and return the paths of the files they wrote plus a short summary; the files "
    "(report.json, matches.json, ranking JSON) hold the full results. `inspect` with backend='toy' "
    "runs on synthetic data in seconds."
)


def _require_mcp() -> Any:
    try:
        from mcp.server.fastmcp import FastMCP
    except ImportError as exc:
        raise ValueError(
            "interpkit mcp needs the MCP SDK: pip install \"interpkit[agent]\" (or pip install \"mcp>=1.20,<2\")"
        ) from exc
    return FastMCP


def _threaded(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``fn`` as a coroutine run in a worker thread; ``functools.wraps`` keeps its signature for the schema.

    The wrapper is named after the tool, so argument errors read "validation error for <tool>Arguments".
    """
    import anyio.to_thread

    @functools.wraps(fn)
    async def call(**kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(functools.partial(fn, **kwargs))

    call.__name__ = name
    return call


def build_server(tools: Any = None) -> Any:
    """A ``FastMCP`` server with the given tools (default: every entry of `_mcp_tools.TOOLS`).

    Raises:
        ValueError: the ``mcp`` package is not installed (the message says how to install it).
    """
    FastMCP = _require_mcp()
    from mcp.types import ToolAnnotations

    from interpkit._version import __version__
    from interpkit.cli._mcp_tools import TOOLS

    server = FastMCP(SERVER_NAME, instructions=INSTRUCTIONS)
    # FastMCP reports its own version unless told; the low-level server holds the field
    server._mcp_server.version = __version__
    for spec in TOOLS if tools is None else tools:
        server.add_tool(
            _threaded(spec.fn, spec.name), name=spec.name, title=spec.title, description=spec.fn.__doc__,
            annotations=ToolAnnotations(title=spec.title, readOnlyHint=spec.read_only, openWorldHint=False),
        )
    return server


def serve_stdio(server: Any) -> None:
    """Serve ``server`` over this process's stdin and stdout until the client closes stdin.

    Standard output carries the protocol only: the protocol writes to a duplicate of file
    descriptor 1, and descriptor 1 itself is pointed at standard error, so a stray ``print`` or a
    C library writing to stdout inside a tool cannot corrupt the JSON-RPC stream.
    """
    import io
    import os
    import sys

    import anyio
    from mcp.server.stdio import stdio_server

    sys.stdout.flush()
    protocol = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), encoding="utf-8")
    os.dup2(2, 1)
    # FastMCP.run("stdio") does the same with the process's own stdout; its low-level server is the
    # one the SDK's own helpers (mcp.shared.memory) drive as well
    low = server._mcp_server

    async def serve() -> None:
        async with stdio_server(stdout=anyio.wrap_file(protocol)) as (read, write):
            await low.run(read, write, low.create_initialization_options())

    anyio.run(serve)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--list-tools", action="store_true",
                   help="print the tool names and titles and exit instead of serving")


def run(args: argparse.Namespace) -> int:
    if args.list_tools:
        from interpkit.cli._mcp_tools import TOOLS

        _require_mcp()
        for spec in TOOLS:
            print(f"{spec.name:<14} {spec.title}")
        return 0
    serve_stdio(build_server())  # blocks until the client closes stdin
    return 0
