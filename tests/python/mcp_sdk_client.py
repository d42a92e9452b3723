"""The official Python MCP SDK against `stockade serve`'s /mcp: initialize, list the tools
and read a SKU's stock (checking the SEP-2549 cache hints), call a tool, and end the
session with DELETE. Prints one JSON line of what it saw; any SDK warning (such as
"Session termination failed") is reported in it. Run by
tests/tests/scenarios/mcp_with_the_official_python_sdk.rs.

    python mcp_sdk_client.py http://127.0.0.1:8080/mcp <token> <sku>
"""

import asyncio
import json
import logging
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


async def main(url, token, sku):
    warnings = Collect()
    logging.getLogger().addHandler(warnings)
    seen = {}
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                seen["protocol"] = init.protocol_version
                tools = await session.list_tools()
                seen["tools"] = sorted(t.name for t in tools.tools)
                seen["tools_ttl_ms"] = getattr(tools, "ttl_ms", None)
                seen["tools_cache_scope"] = getattr(tools, "cache_scope", None)
                stock = await session.read_resource(f"inventory://sku/{sku}")
                seen["read_ttl_ms"] = getattr(stock, "ttl_ms", None)
                seen["read_cache_scope"] = getattr(stock, "cache_scope", None)
                seen["read"] = json.loads(stock.contents[0].text)
                called = await session.call_tool("inventory.getStock", {"sku": sku})
                seen["call_is_error"] = called.is_error
    seen["warnings"] = warnings.lines
    print(json.dumps(seen, default=str), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
