"""Client address allow-lists for HTTP paths, directly or behind reverse proxies.

Responsible for: reading the lists (`[http] callback_sources`, the file named by
`callback_sources_file`, `metrics_sources`, `trusted_proxies`), and deciding per
request whether its client may use a path.

What always holds:

* The client is the TCP peer. Only when the peer is one of `trusted_proxies` is
  `X-Forwarded-For` read, from the right: each proxy appends the address it saw,
  so the rightmost entry that is not a trusted proxy is the first one that no
  proxy of ours vouches for. Entries left of it were written by the client
  itself and are never believed.
* Anything that cannot be read as an address (a malformed header, a peer
  without an IP address) is refused, never let through.
* IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, what a dual-stack listener reports)
  are compared as their IPv4 address, so IPv4 lists work on `::` listeners.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Decisions remembered per (peer, X-Forwarded-For): LINK keeps a few connections
# open and sends many requests on each, so parsing every time would be
# per-message work. Cleared when full rather than evicted one by one.
_MEMO_LIMIT = 4096


def parse_network(text: str) -> Network:
    """`"193.142.108.11"`, `"193.142.108.0/24"` or an IPv6 form; host bits may be set."""
    network = ipaddress.ip_network(text.strip(), strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
    return network


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """Each text as a network (ValueError naming the bad one)."""
    networks: list[Network] = []
    for text in texts:
        try:
            networks.append(parse_network(text))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def read_networks(path: str) -> tuple[Network, ...]:
    """One address or CIDR per line; `#` starts a comment; blank lines are skipped.

    Raises OSError when the file cannot be read, ValueError naming the line of
    anything that is not an address.
    """
    networks: list[Network] = []
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.partition("#")[0].strip()
        if not entry:
            continue
        try:
            networks.append(parse_network(entry))
        except ValueError:
            raise ValueError(f"line {number}: {entry!r} is not an IP address or CIDR") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An address as a peer or an X-Forwarded-For entry writes it, or None.

    Entries may carry a port (`1.2.3.4:5678`, `[2001:db8::1]:443`), as some
    proxies write them.
    """
    text = text.strip()
    port = ""
    if text.startswith("["):
        text, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NetworkSet:
    """Membership of an address in a list of networks.

    Single addresses (what LINK publishes) go in a set, so the usual check is
    one lookup; only real ranges are scanned.
    """

    def __init__(self, networks: Iterable[Network]) -> None:
        hosts: set[Address] = set()
        ranges: list[Network] = []
        for network in networks:
            if network.num_addresses == 1:
                hosts.add(network.network_address)
            else:
                ranges.append(network)
        self._hosts = frozenset(hosts)
        self._ranges = tuple(ranges)

    def __contains__(self, address: Address) -> bool:
        if address in self._hosts:
            return True
        return any(address in network for network in self._ranges)


class SourcePolicy:
    """Who may use a path: `allowed` networks, seen through `trusted_proxies`."""

    def __init__(self, allowed: Iterable[Network], trusted_proxies: Iterable[Network] = ()) -> None:
        proxies = tuple(trusted_proxies)
        self._allowed = NetworkSet(allowed)
        self._proxies = NetworkSet(proxies)
        # Without proxies the header is never read, so it must not vary the memo key.
        self._reads_header = bool(proxies)
        self._memo: dict[tuple[str, bytes | None], tuple[bool, str]] = {}

    def check(self, peer: str, forwarded_for: bytes | None) -> tuple[bool, str]:
        """(allowed?, the client address as decided, or what could not be read)."""
        if not self._reads_header:
            forwarded_for = None
        key = (peer, forwarded_for)
        decision = self._memo.get(key)
        if decision is None:
            client = self.client(peer, forwarded_for)
            if client is None:
                decision = (False, f"unreadable client address (peer {peer or '?'})")
            else:
                decision = (client in self._allowed, str(client))
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = decision
        return decision

    def client(self, peer: str, forwarded_for: bytes | None) -> Address | None:
        """The client's address: the peer, or what trusted proxies say it is."""
        address = parse_address(peer)
        if address is None or forwarded_for is None or address not in self._proxies:
            return address
        try:
            entries = forwarded_for.decode("ascii").split(",")
        except UnicodeDecodeError:
            return None
        for entry in reversed(entries):
            hop = parse_address(entry)
            if hop is None:
                return None
            address = hop
            if hop not in self._proxies:
                break
        # Every hop a trusted proxy: the leftmost is as far as anyone can tell.
        return address


__all__ = [
    "Address",
    "Network",
    "NetworkSet",
    "SourcePolicy",
    "parse_address",
    "parse_network",
    "parse_networks",
    "read_networks",
]


def source_policies(
    callback_sources: Iterable[Network] | None,
    metrics_sources: Iterable[Network] | None,
    trusted_proxies: Iterable[Network],
) -> tuple[SourcePolicy | None, SourcePolicy | None]:
    """(who may post callbacks, who may read /metrics and the probes); None: anyone."""
    proxies = tuple(trusted_proxies)
    callers = None if callback_sources is None else SourcePolicy(callback_sources, proxies)
    scrapers = None if metrics_sources is None else SourcePolicy(metrics_sources, proxies)
    return callers, scrapers
