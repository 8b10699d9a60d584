"""Email recipients, parsed rather than split: one string is exactly one plain address, or it is refused.

The standard library's RFC 5322 parser (`email.headerregistry.Address(addr_spec=...)`) reads the string; it
is accepted only when it holds one address and nothing else, written in its plain form (`local@domain`):
no display name, comment, group, source route, list, quoted local part, encoded word, IP literal, trailing
dot or non-ASCII character. The local part is limited to letters, digits and `. _ + - '` (so no `%` or `!`
relay routing either), and the domain to DNS labels. What the policy checks and what the email tool hands to
SMTP are the same parsed `Address` values.

A policy names allowed domains exactly (`example.com`, compared case-insensitively) or as all subdomains of
one (`*.example.com`, which does not match `example.com` itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.headerregistry import Address as ParsedAddress

_LOCAL = re.compile(r"[A-Za-z0-9_+'-]+(?:\.[A-Za-z0-9_+'-]+)*")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_NUMERIC_LABEL = re.compile(r"[0-9]+")


class AddressError(ValueError):
    """A recipient that is not exactly one plain address, or a domain pattern that is not one."""


@dataclass(frozen=True)
class Address:
    """One parsed recipient; the domain is lower-case."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


def _domain_problem(domain: str) -> str | None:
    if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
        return "the domain must be DNS labels (letters, digits, hyphens) joined by dots"
    if _NUMERIC_LABEL.fullmatch(domain.rsplit(".", 1)[-1]):
        return "the domain must be a name, not a number or an IP address"
    return None


def parse_address(text: object) -> Address:
    """The one plain address `text` holds; AddressError saying why otherwise."""
    if not isinstance(text, str):
        raise AddressError(f"a recipient must be a string, got {type(text).__name__}")
    shown = repr(text[:200])
    if not text.isascii() or any(c.isspace() or not c.isprintable() for c in text):
        raise AddressError(f"{shown} is not a plain address: it holds whitespace, control or non-ASCII characters")
    try:
        parsed = ParsedAddress(addr_spec=text)
    except Exception as exc:  # the parser's errors, and anything else it might raise: refused either way
        raise AddressError(f"{shown} is not exactly one plain address ({exc})") from None
    if parsed.addr_spec != text:
        raise AddressError(f"{shown} is not a plain address: the parser reads it as {parsed.addr_spec!r}")
    local, domain = parsed.username, parsed.domain.lower()
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise AddressError(f"{shown} is not a plain address: the part before '@' may only hold letters, digits "
                           "and . _ + - ' (no quoting, no routing)")
    problem = _domain_problem(domain)
    if problem:
        raise AddressError(f"{shown} is not a plain address: {problem}")
    return Address(local, domain)


def parse_addresses(values: object) -> list[Address]:
    """A list of recipient strings, each exactly one address."""
    if not isinstance(values, list):
        raise AddressError(f"recipients must be a list of addresses, got {type(values).__name__}")
    return [parse_address(value) for value in values]


def domain_pattern(pattern: object) -> str:
    """A policy's allowed-domain entry, checked and lower-cased: `example.com` or `*.example.com`."""
    if not isinstance(pattern, str):
        raise AddressError(f"an allowed domain must be a string, got {type(pattern).__name__}")
    name = pattern.lower().removeprefix("*.")
    problem = _domain_problem(name)
    if problem:
        raise AddressError(f"{pattern!r} is not a domain or '*.domain': {problem}")
    return pattern.lower()


def domain_allowed(domain: str, patterns: Iterable[str]) -> bool:
    """Exact, case-insensitive: `example.com` matches only itself, `*.example.com` only names below it."""
    domain = domain.lower()
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("*."):
            if domain.endswith(pattern[1:]):
                return True
        elif domain == pattern:
            return True
    return False


def recipient_problem(value: object, patterns: Iterable[str]) -> str | None:
    """Why `value` may not receive mail under `patterns` (None: it may)."""
    try:
        address = parse_address(value)
    except AddressError as exc:
        return str(exc)
    allowed = list(patterns)
    if not domain_allowed(address.domain, allowed):
        return f"recipient {str(address)!r} is outside the allowed domains {allowed}"
    return None
