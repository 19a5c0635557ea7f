"""gateway.http.sources and the `[http]` allow-list keys: who may call, through which proxies."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, HttpSettings, parse
from gateway.http.sources import SourcePolicy, parse_address, parse_network, read_networks
from tests.support.configs import minimal

SHIPPED = Path(__file__).resolve().parents[2] / "etc" / "link-callback-sources.txt"
# Seed 000, Appendix 1: the six hosts of each current group, by their first and
# last address; and the decommissioned ones, which must not be let in.
CURRENT_RANGES = (
    ("193.142.108.11", "193.142.108.16"),
    ("37.202.24.11", "37.202.24.16"),
    ("185.73.14.11", "185.73.14.16"),
    ("213.242.87.36", "213.242.87.41"),
    ("62.67.62.101", "62.67.62.106"),
    ("217.163.95.196", "217.163.95.201"),
)
SOCKS = ("195.84.162.34", "194.71.165.71", "195.84.162.16", "194.71.165.98")
SOCKS += ("195.84.162.3", "194.71.165.122")
DECOMMISSIONED = [f"213.242.87.{n}" for n in range(68, 74)] + [
    f"62.67.62.{n}" for n in range(68, 74)
]


def with_http(**http: Any) -> dict[str, Any]:
    return {**minimal(), "http": http}


def refused(tree: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(tree)
    return info.value


# --- the shipped list -------------------------------------------------------------


def test_the_shipped_file_lists_links_current_addresses_as_32s() -> None:
    networks = read_networks(str(SHIPPED))
    assert all(n.prefixlen == 32 for n in networks)
    expected = set(SOCKS)
    for first, last in CURRENT_RANGES:
        low, high = int(ipaddress.ip_address(first)), int(ipaddress.ip_address(last))
        expected |= {str(ipaddress.ip_address(n)) for n in range(low, high + 1)}
    assert {str(n.network_address) for n in networks} == expected
    assert len(networks) == 42


def test_the_shipped_file_leaves_out_decommissioned_addresses() -> None:
    policy = SourcePolicy(read_networks(str(SHIPPED)))
    for address in DECOMMISSIONED:
        assert policy.check(address, None)[0] is False
    assert policy.check("193.142.108.13", None) == (True, "193.142.108.13")


# --- parsing ---------------------------------------------------------------------


def test_files_take_comments_blank_lines_and_cidrs(tmp_path: Path) -> None:
    path = tmp_path / "sources.txt"
    path.write_text("# LINK\n\n193.142.108.0/24  # n-eu\n  2001:db8::/32\n10.1.2.3\n")
    assert [str(n) for n in read_networks(str(path))] == [
        "193.142.108.0/24",
        "2001:db8::/32",
        "10.1.2.3/32",
    ]
    path.write_text("10.0.0.1\nsp1.n-eu.linkmobility.io\n")
    with pytest.raises(ValueError, match="line 2"):
        read_networks(str(path))


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("193.142.108.11", "193.142.108.11"),
        ("193.142.108.11:443", "193.142.108.11"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:193.142.108.11", "193.142.108.11"),  # a dual-stack listener's peer
        (" 10.0.0.1 ", "10.0.0.1"),
    ],
)
def test_addresses_as_peers_and_proxies_write_them(text: str, address: str) -> None:
    assert str(parse_address(text)) == address


@pytest.mark.parametrize(
    "text", ["", "unknown", "10.0.0", "[::1", "[::1]x", "1.2.3.4:http", "1.2.3.4.5", "_hidden"]
)
def test_what_is_not_an_address(text: str) -> None:
    assert parse_address(text) is None


def test_mapped_networks_become_ipv4() -> None:
    assert str(parse_network("::ffff:10.0.0.0/104")) == "10.0.0.0/8"


# --- the policy ------------------------------------------------------------------


def test_without_proxies_the_header_is_ignored() -> None:
    policy = SourcePolicy([parse_network("193.142.108.0/24")])
    assert policy.check("193.142.108.11", b"203.0.113.9")[0] is True
    assert policy.check("203.0.113.9", b"193.142.108.11") == (False, "203.0.113.9")


def test_an_untrusted_peer_cannot_claim_an_address() -> None:
    policy = SourcePolicy([parse_network("193.142.108.11")], [parse_network("10.0.0.5")])
    assert policy.check("203.0.113.9", b"193.142.108.11")[0] is False


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() -> None:
    proxies = [parse_network("10.0.0.0/29")]
    policy = SourcePolicy([parse_network("193.142.108.11")], proxies)
    assert policy.check("10.0.0.5", b"193.142.108.11") == (True, "193.142.108.11")
    # Two proxies of ours in a row.
    assert policy.check("10.0.0.5", b"193.142.108.11, 10.0.0.2")[0] is True
    # The client wrote a LINK address itself; the proxy appended the real one.
    assert policy.check("10.0.0.5", b"193.142.108.11, 203.0.113.9") == (False, "203.0.113.9")
    # No header: the proxy itself is the client.
    assert policy.check("10.0.0.5", None) == (False, "10.0.0.5")


def test_unreadable_forwarding_is_refused() -> None:
    policy = SourcePolicy([parse_network("0.0.0.0/0")], [parse_network("10.0.0.5")])
    for header in (b"", b"unknown", b"193.142.108.11, garbage", "ä".encode()):
        allowed, why = policy.check("10.0.0.5", header)
        assert allowed is False and "unreadable" in why
    assert policy.check("not-an-ip", None)[0] is False


def test_ipv4_lists_match_mapped_peers() -> None:
    policy = SourcePolicy([parse_network("193.142.108.0/24")])
    assert policy.check("::ffff:193.142.108.11", None)[0] is True


def test_decisions_are_remembered_but_not_without_bound() -> None:
    policy = SourcePolicy([parse_network("10.0.0.0/8")], [parse_network("127.0.0.1")])
    for n in range(10_000):
        policy.check("127.0.0.1", f"10.0.{n // 256}.{n % 256}".encode())
    assert len(policy._memo) <= 4096


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.one_of(st.none(), st.binary(max_size=60)))
def test_any_peer_and_header_give_a_decision(peer: str, header: bytes | None) -> None:
    policy = SourcePolicy([parse_network("193.142.108.0/24")], [parse_network("127.0.0.1")])
    allowed, _ = policy.check(peer, header)
    assert isinstance(allowed, bool)


# --- the [http] keys ---------------------------------------------------------------


def test_defaults_have_no_allow_lists() -> None:
    http = parse(minimal()).http
    assert http == HttpSettings()
    assert (http.callback_sources, http.metrics_sources, http.trusted_proxies) == (None, None, ())
    assert (http.request_timeout, http.keepalive_timeout) == (30.0, 60.0)


def test_callback_sources_and_the_file_together() -> None:
    http = parse(
        with_http(callback_sources=["10.0.0.0/8"], callback_sources_file=str(SHIPPED))
    ).http
    assert http.callback_sources is not None
    assert str(http.callback_sources[0]) == "10.0.0.0/8"
    assert len(http.callback_sources) == 43
    assert http.callback_sources_file == str(SHIPPED)


def test_other_http_keys_parse() -> None:
    http = parse(
        with_http(
            metrics_sources=["127.0.0.1", "::1"],
            trusted_proxies="10.0.0.1",
            request_timeout="5s",
            keepalive_timeout="2m",
        )
    ).http
    assert [str(n) for n in http.metrics_sources or ()] == ["127.0.0.1/32", "::1/128"]
    assert [str(n) for n in http.trusted_proxies] == ["10.0.0.1/32"]
    assert (http.request_timeout, http.keepalive_timeout) == (5.0, 120.0)


@pytest.mark.parametrize(
    ("http", "key"),
    [
        ({"callback_sources": []}, "http.callback_sources"),
        ({"callback_sources": ["LINK"]}, "http.callback_sources"),
        ({"callback_sources": "193.142.108.0/33"}, "http.callback_sources"),
        ({"callback_sources_file": "/nonexistent/list.txt"}, "http.callback_sources_file"),
        ({"metrics_sources": ["x"]}, "http.metrics_sources"),
        ({"trusted_proxies": [1]}, "http.trusted_proxies"),
        ({"request_timeout": 0}, "http.request_timeout"),
        ({"keepalive_timeout": "0s"}, "http.keepalive_timeout"),
    ],
)
def test_bad_http_keys(http: dict[str, Any], key: str) -> None:
    assert refused(with_http(**http)).key == key


def test_a_file_without_addresses_or_with_a_bad_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    error = refused(with_http(callback_sources_file=str(empty)))
    assert "every callback would be refused" in error.problem
    bad = tmp_path / "bad.txt"
    bad.write_text("193.142.108.11\n193.142.108.300\n")
    error = refused(with_http(callback_sources_file=str(bad)))
    assert error.key == "http.callback_sources_file" and "line 2" in error.problem
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe10.0.0.1\n")
    assert refused(with_http(callback_sources_file=str(binary))).key == (
        "http.callback_sources_file"
    )


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.one_of(st.text(max_size=20), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_KEYS = {
    "http": [
        "callback_sources",
        "callback_sources_file",
        "metrics_sources",
        "trusted_proxies",
        "request_timeout",
        "keepalive_timeout",
    ],
    "smpp": [
        "tls_listen",
        "tls_certificate",
        "tls_private_key",
        "tls_min_version",
        "tls_ciphers",
        "lockout_failures",
        "lockout_window",
        "lockout_time",
    ],
}


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(_KEYS)), st.data())
def test_any_value_for_a_security_key_fails_only_with_config_error(
    section: str, data: st.DataObject
) -> None:
    key = data.draw(st.sampled_from(_KEYS[section]))
    value = data.draw(_values)
    tree = {**minimal(), section: {key: value}}
    if section == "smpp" and key != "tls_listen":
        tree[section]["tls_listen"] = ["tcp:3550"]
    try:
        parse(tree)
    except ConfigError as e:
        assert e.key and e.problem
