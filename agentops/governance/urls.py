"""HTTP targets, parsed once into what the client will connect to: scheme, host and port.

A URL is accepted only as `http` or `https` with a host, with no userinfo (`https://allowed@evil/`), no
backslash, whitespace or control character, and no percent-encoding or zone id in the host. The host is
normalised the way a connection would see it: lower case, one trailing dot dropped, IDNA for non-ASCII
names, every numeric IPv4 form the C library accepts (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) as its
dotted address, and an IPv4-mapped IPv6 literal (`[::ffff:127.0.0.1]`) as the IPv4 address it reaches.
The caller sends the rebuilt `Target.url`, so the request goes to exactly the host and port that were
checked.

An allowlist entry is a host, optionally with a port (`api.example.com:8443`, `[::1]:8080`), normalised the
same way and compared exactly. Without a port, an entry allows only the scheme's default port (80, 443).
Names are compared as names: where a name resolves to is not checked.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMBER = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PORT = re.compile(r"[0-9]{1,5}")


class UrlError(ValueError):
    """A URL or an allowlist entry that cannot be read as one plain http(s) target."""


@dataclass(frozen=True)
class Target:
    """One parsed URL: the connection it makes (scheme, host, port) and the path and query it asks for."""

    scheme: str
    host: str
    """A lower-case ASCII name, a dotted IPv4 address, or an IPv6 address in brackets."""
    port: int
    path: str
    """The path and query, as given ("/" when empty); the fragment is dropped."""

    @property
    def authority(self) -> str:
        return self.host if self.port == DEFAULT_PORTS[self.scheme] else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


@dataclass(frozen=True)
class HostEntry:
    """One allowlist entry: a host, and the one port it allows (None: the scheme's default port)."""

    host: str
    port: int | None

    def allows(self, target: Target) -> bool:
        port = self.port if self.port is not None else DEFAULT_PORTS[target.scheme]
        return target.host == self.host and target.port == port

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def _refuse_characters(text: str, what: str) -> None:
    bad = next((c for c in text if c == "\\" or c.isspace() or not c.isprintable()), None)
    if bad is not None:
        raise UrlError(f"{what} {text[:200]!r} holds {bad!r}: backslashes, whitespace and control characters "
                       "are refused")


def _ipv4(host: str) -> str | None:
    """The dotted address of a numeric IPv4 host, parsed as the C library parses it for a connection."""
    if not _NUMBER.fullmatch(host.rsplit(".", 1)[-1]):
        return None
    try:
        return str(ipaddress.IPv4Address(socket.inet_aton(host)))
    except OSError:
        raise UrlError(f"host {host!r} looks like a number but is not a valid IPv4 address") from None


def normalise_host(host: str) -> str:
    """The host as a connection sees it (see the module docstring); UrlError when it is not one."""
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        try:
            if "%" in inner:
                raise ValueError("a zone id")
            address = ipaddress.IPv6Address(inner)
        except ValueError:
            raise UrlError(f"host {host!r} is not an IPv6 address (zone ids are refused)") from None
        mapped = address.ipv4_mapped
        return str(mapped) if mapped is not None else f"[{address.compressed}]"
    if "%" in host or "[" in host or "]" in host:
        raise UrlError(f"host {host!r}: percent-encoding and brackets are refused in a host name")
    name = host.lower()
    if not name.isascii():
        import idna  # httpx's own dependency, and its encoding of non-ASCII names

        try:
            name = idna.encode(name).decode("ascii")
        except idna.IDNAError as exc:
            raise UrlError(f"host {host!r} is not a valid international domain name ({exc})") from None
    name = name.removesuffix(".")
    if not name:
        raise UrlError("the URL has no host")
    numeric = _ipv4(name)
    if numeric is not None:
        return numeric
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise UrlError(f"host {host!r} is not a host name (letters, digits, '-' and '_' in dot-separated labels)")
    return name


def _split_authority(authority: str, what: str) -> tuple[str, int | None]:
    """(normalised host, port or None) from `host`, `host:port`, `[v6]` or `[v6]:port`."""
    if "@" in authority:
        raise UrlError(f"{what} {authority[:200]!r} holds userinfo ('@'), which is refused")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise UrlError(f"{what} {authority[:200]!r} has an unclosed '['")
        host, rest = authority[:end + 1], authority[end + 1:]
        if rest and not rest.startswith(":"):
            raise UrlError(f"{what} {authority[:200]!r} has text after the IPv6 address")
        port = rest[1:] if rest else None
    else:
        if authority.count(":") > 1:
            raise UrlError(f"{what} {authority[:200]!r}: an IPv6 address must be in brackets")
        host, colon, port_text = authority.partition(":")
        port = port_text if colon else None
    if port is None:
        return normalise_host(host), None
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise UrlError(f"{what} {authority[:200]!r}: the port must be a number from 1 to 65535")
    return normalise_host(host), int(port)


def parse_url(url: object) -> Target:
    """The one http(s) target `url` names; UrlError saying why otherwise."""
    if not isinstance(url, str):
        raise UrlError(f"a URL must be a string, got {type(url).__name__}")
    _refuse_characters(url, "URL")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UrlError(f"URL {url[:200]!r} cannot be parsed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlError(f"URL {url[:200]!r}: only http and https are allowed")
    if not parts.netloc:
        raise UrlError(f"URL {url[:200]!r} has no host (write scheme://host/...)")
    host, port = _split_authority(parts.netloc, "URL authority")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, host, port if port is not None else DEFAULT_PORTS[scheme], path)


def parse_host_entry(entry: object) -> HostEntry:
    """An allowlist entry: `host` or `host:port`, normalised like a URL's host."""
    if not isinstance(entry, str):
        raise UrlError(f"an allowed host must be a string, got {type(entry).__name__}")
    _refuse_characters(entry, "allowed host")
    if "/" in entry or not entry:
        raise UrlError(f"allowed host {entry!r} must be a host or host:port, not a URL")
    host, port = _split_authority(entry, "allowed host")
    return HostEntry(host, port)


def screen_url(url: object, entries: Iterable[str]) -> Target:
    """The target of `url` when an entry allows it: UrlError when it is not a plain http(s) URL,
    PermissionError when no entry names its host and port."""
    target = parse_url(url)
    allowed = [parse_host_entry(entry) for entry in entries]
    if not any(entry.allows(target) for entry in allowed):
        listed = ", ".join(map(str, allowed)) or "empty"
        raise PermissionError(f"host '{target.authority}' is not in the allowlist ({listed})")
    return target


def redirect_target(base: Target, location: object, entries: Iterable[str]) -> Target:
    """The next hop of a redirect from `base` (a `Location` header, absolute or relative), screened like
    a URL of its own."""
    if not isinstance(location, str):
        raise UrlError(f"a redirect location must be a string, got {type(location).__name__}")
    _refuse_characters(location, "redirect location")
    return screen_url(urljoin(base.url, location), entries)


def url_problem(url: object, entries: Iterable[str]) -> str | None:
    """Why the policy refuses `url` under the allowlist `entries` (None: allowed)."""
    try:
        screen_url(url, entries)
    except (UrlError, PermissionError) as exc:
        return str(exc)
    return None
