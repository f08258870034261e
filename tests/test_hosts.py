"""Host addresses: parsed like Ollama does, and kept on this machine unless allowed."""

from __future__ import annotations

import ipaddress
import re
import socket

import pytest

from emoprobe.errors import ConfigError
from emoprobe.hosts import checked_host, is_loopback, normalize_host
from emoprobe.settings import default_host


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("localhost", "http://localhost:11434"),
        (":8080", "http://127.0.0.1:8080"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://127.0.0.1", "http://127.0.0.1:80"),
        ("https://box.lan", "https://box.lan:443"),
        ("http://[::1]:11434/", "http://[::1]:11434"),
        ("  http://localhost:11434/ollama/  ", "http://localhost:11434/ollama"),
    ],
)
def test_normalize_host(raw, url):
    assert normalize_host(raw) == url


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "http://",
        "ftp://x",
        "local host",
        "http://[::1",
        "x:port",
        "http://a?b=c",
        "http://user@localhost",
    ],
)
def test_malformed_hosts_are_config_errors(raw):
    with pytest.raises(ConfigError, match="malformed host"):
        normalize_host(raw)


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:1", True),
        ("http://127.8.9.10:1", True),
        ("http://[::1]:1", True),
        ("http://localhost:1", True),
        ("http://192.168.1.5:1", False),
        ("http://10.0.0.1:1", False),
        ("http://gpu-box:1", False),
        ("http://localhost.evil.com:1", False),
    ],
)
def test_is_loopback(url, local):
    assert is_loopback(url) is local


def test_remote_hosts_need_allow_remote():
    with pytest.raises(ConfigError, match="allow remote hosts") as caught:
        checked_host("gpu-box:11434", allow_remote=False)
    assert caught.value.setting == "allow_remote"  # the CLI names --allow-remote for it
    assert caught.value.host == "http://gpu-box:11434"
    assert checked_host("gpu-box:11434", allow_remote=True) == "http://gpu-box:11434"


def test_default_host_reads_ollama_host(monkeypatch):
    assert default_host() == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:9999")
    assert default_host() == "0.0.0.0:9999"


def _client_examples() -> list[tuple[str, str]]:
    """The (input, URL) pairs of the ollama client's own `_parse_host` doctests."""
    import doctest
    import sys

    import ollama  # noqa: F401  (loads ollama._client)

    parse_host = sys.modules["ollama._client"]._parse_host
    examples = doctest.DocTestParser().get_examples(parse_host.__doc__ or "")
    pairs = []
    for example in examples:
        argument = example.source.strip()[len("_parse_host(") : -1]
        if argument not in ("None", "''"):
            pairs.append((eval(argument), eval(example.want)))
    return pairs


def test_hosts_are_read_as_the_ollama_client_reads_them():
    """emoprobe keeps its own parser (importing `ollama` builds a client that reads proxy
    settings), so it is checked against every example the client documents."""
    pairs = _client_examples()
    assert len(pairs) >= 25
    for raw, url in pairs:
        assert normalize_host(raw) == url, raw


# -- #16 item 12: a local name is resolved before it counts as local -----------------------
def _resolver(addresses: dict[str, list[str]]):
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in addresses:
            if not addresses[host]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            family = {4: socket.AF_INET, 6: socket.AF_INET6}
            return [
                (family[ipaddress.ip_address(a).version], socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses[host]
            ]
        return real(host, port, *args, **kwargs)

    return getaddrinfo


@pytest.mark.parametrize(
    ("name", "addresses", "refusal"),
    [
        ("localhost.localdomain", ["127.0.0.1"], None),
        ("ip6-localhost", ["::1"], None),
        ("localhost.localdomain", ["10.0.0.5"], "resolves to 10.0.0.5, not this machine"),
        ("ip6-localhost", ["::1", "2001:db8::1"], "resolves to 2001:db8::1"),
        ("localhost", ["127.0.0.1", "192.168.1.9"], "resolves to 192.168.1.9"),
        ("ip6-loopback", [], "ip6-loopback does not resolve here"),
    ],
)
def test_a_local_name_counts_only_when_it_resolves_to_loopback_alone(
    monkeypatch, name, addresses, refusal
):
    monkeypatch.setattr(socket, "getaddrinfo", _resolver({name: addresses}))
    url = f"http://{name}:11434"
    assert is_loopback(url) is (refusal is None)
    if refusal is None:
        assert checked_host(url, allow_remote=False) == url
    else:
        with pytest.raises(ConfigError, match=re.escape(refusal)) as error:
            checked_host(url, allow_remote=False)
        assert error.value.host == url
        assert checked_host(url, allow_remote=True) == url


def test_no_other_name_is_local_whatever_the_resolver_says(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _resolver({"gpu-box": ["127.0.0.1"]}))
    assert not is_loopback("http://gpu-box:11434")


def test_the_real_resolver_says_localhost_is_this_machine():
    assert is_loopback("http://localhost:11434")
