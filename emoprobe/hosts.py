"""Model-server addresses: parse them like Ollama does, and keep them local by default.

The data are students' faces, so emoprobe talks only to loopback hosts unless the user
allows remote hosts (`allow_remote`; the CLI's `--allow-remote`); the check runs
before any connection is opened. A loopback address is local; of names, only the
usual names of this machine (`localhost`, `localhost.localdomain`, `ip6-localhost`…),
and only when every address they resolve to is a loopback one: a name the resolver
points elsewhere is refused, and no other name counts as local whatever DNS says.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from emoprobe.errors import ConfigError
from emoprobe.settings import DEFAULT_OLLAMA_HOST, OLLAMA_PORT

LOCAL_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "localhost6"}
)


def normalize_host(raw: str) -> str:
    """A full `scheme://host:port[/path]` URL for what a user typed, as Ollama reads it.

    `localhost`, `:11434`, `127.0.0.1:8080` and `http://box` are all accepted; a port
    defaults to 11434 without a scheme and to the scheme's port with one.
    """
    text = raw.strip()
    if not text or any(c.isspace() for c in text):
        raise _malformed(raw, f"expected e.g. {DEFAULT_OLLAMA_HOST}")
    has_scheme = "://" in text
    try:
        parts = urlsplit(text if has_scheme else f"http://{text}")
    except ValueError as error:
        raise _malformed(raw, f"{error}") from None
    if parts.scheme not in ("http", "https"):
        raise _malformed(raw, "the scheme must be http or https")
    try:
        port = parts.port
    except ValueError:
        raise _malformed(raw, "the port must be a number") from None
    hostname = parts.hostname or ("127.0.0.1" if text.startswith(":") else "")
    if not hostname or parts.query or parts.fragment or "@" in parts.netloc:
        raise _malformed(raw, f"expected e.g. {DEFAULT_OLLAMA_HOST}")
    if port is None:
        port = (443 if parts.scheme == "https" else 80) if has_scheme else OLLAMA_PORT
    shown = f"[{hostname}]" if ":" in hostname else hostname
    return f"{parts.scheme}://{shown}:{port}{parts.path.rstrip('/')}"


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine: a loopback address, the unspecified address
    (`0.0.0.0`, `::`: Ollama's own `OLLAMA_HOST=0.0.0.0` listens on every interface and
    its client then reaches this machine), or a local name that resolves to loopback
    addresses only."""
    return not _not_local(url)


def _not_local(url: str) -> str:
    """'' when `url` is this machine, else why not (for the refusal)."""
    parts = urlsplit(url)
    hostname = (parts.hostname or "").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(hostname)
        return "" if address.is_loopback or address.is_unspecified else "not this machine"
    except ValueError:
        pass
    if hostname not in LOCAL_NAMES:
        return "not this machine"
    try:
        found = socket.getaddrinfo(hostname, parts.port or OLLAMA_PORT, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return f"{hostname} does not resolve here"
    addresses = sorted({str(entry[4][0]).split("%")[0] for entry in found})
    outside = [a for a in addresses if not ipaddress.ip_address(a).is_loopback]
    if outside or not addresses:
        return f"{hostname} resolves to {', '.join(outside) or 'nothing'}, not this machine"
    return ""


def checked_host(raw: str, *, allow_remote: bool) -> str:
    """The normalised URL, refused unless local or explicitly allowed."""
    url = normalize_host(raw)
    if not allow_remote and (why := _not_local(url)):
        detail = "" if why == "not this machine" else f" ({why})"
        raise ConfigError(
            f"refusing to send images to non-local host {url}{detail}: the data are faces; "
            "allow remote hosts if you mean it",
            host=url,
            setting="allow_remote",
        )
    return url


def _malformed(raw: str, why: str) -> ConfigError:
    return ConfigError(f"malformed host {raw!r}: {why}", host=raw, setting="hosts")
