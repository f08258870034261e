"""The `ollama` package, imported so that proxy settings cannot break the import.

Importing `ollama` builds a default client that reads `$ALL_PROXY` and friends: a SOCKS
proxy there fails the import (httpx lacks socksio). emoprobe never uses that client (its
own clients have `trust_env=False`: faces never go through a proxy), so the import runs
with the proxy variables hidden, then puts them back.
"""

from __future__ import annotations

import os

_PROXY_VARIABLES = frozenset({"all_proxy", "http_proxy", "https_proxy"})
_hidden = {
    name: os.environ.pop(name) for name in list(os.environ) if name.lower() in _PROXY_VARIABLES
}
try:
    import ollama
finally:
    os.environ.update(_hidden)

__all__ = ["ollama"]
