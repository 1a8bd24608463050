"""An HTTP webhook as a tool: the arguments go to a URL, the response body comes back.

``POST`` (and ``PUT``/``PATCH``) send the arguments as a JSON body; ``GET`` and ``DELETE`` as
query parameters. A 2xx answer's body (JSON or text, at most ``MAX_RESULT_CHARS``) is the result;
any other status is an error the model can speak about. Header values may name environment
variables (``${BOOKING_TOKEN}``), so secrets stay in the settings, not in the agent file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from services.llm.tools.spec import DEFAULT_TIMEOUT_S, Tool, ToolSpec

MAX_RESULT_CHARS = 2000
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class WebhookError(RuntimeError):
    """The webhook answered with an error status."""


def expand(value: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """``${NAME}`` replaced by the environment variable NAME (an error when it is unset)."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ValueError(f"the environment variable {name} is not set")
        return environ[name]

    return _VARIABLE.sub(lookup, value)


@dataclass
class Webhooks:
    """One HTTP client for every webhook of the process (opened on the first call)."""

    session: aiohttp.ClientSession | None = field(default=None)

    def client(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
        return self.session

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


def webhook_tool(
    spec: ToolSpec,
    url: str,
    *,
    clients: Webhooks,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Tool:
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"webhook {spec.name}: method {method!r}; choose from {METHODS}")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook {spec.name}: url {url!r} is not http:// or https://")
    sent_headers = {name: expand(value) for name, value in (headers or {}).items()}

    async def run(arguments: dict[str, Any]) -> str:
        body = method in ("POST", "PUT", "PATCH")
        params = None if body else {k: str(v) for k, v in arguments.items()}
        async with clients.client().request(
            method,
            url,
            json=arguments if body else None,
            params=params,
            headers=sent_headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            text = (await response.text())[:MAX_RESULT_CHARS]
            if response.status >= 300:
                raise WebhookError(f"HTTP {response.status}: {text[:200]}")
            return text

    return Tool(spec, run, timeout_s, source="webhook")
