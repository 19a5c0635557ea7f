"""The pieces of `smpp-gateway` that need no process: parsing, encoding, formatting."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from gateway.cli import main as cli
from gateway.cli import queues
from gateway.cli.esme import (
    destination_address,
    receipt_for,
    source_address,
    status_name,
    submit_for,
)
from gateway.connectors.common.gates import partner_gate
from gateway.smpp import pdu as p
from gateway.smpp.receipts import format_receipt_text


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        (None, ("127.0.0.1", 2775)),
        (["tcp:2775"], ("127.0.0.1", 2775)),
        ("tcp:2776:interface=10.1.2.3", ("10.1.2.3", 2776)),
        (["tcp:port=2777:interface=0.0.0.0"], ("127.0.0.1", 2777)),
        (["tcp6:2778:interface=\\:\\:1"], ("::1", 2778)),
        (["ssl:3550:privateKey=k.pem", "tcp:2779"], ("127.0.0.1", 2779)),
        (["systemd:domain=INET:index=0"], None),
    ],
)
def test_the_send_port_comes_from_the_first_tcp_listener(
    listen: object, expected: tuple[str, int] | None
) -> None:
    raw: dict[str, object] = {} if listen is None else {"smpp": {"listen": listen}}
    assert cli._listener(raw) == expected


def test_short_text_goes_in_short_message_long_text_in_message_payload() -> None:
    short = submit_for("a" * 158 + "€", "Shop", "+4799999999")  # € takes two septets
    assert (short.data_coding, len(short.short_message)) == (0, 160)
    assert short.tlv(p.Tag.MESSAGE_PAYLOAD) is None
    over = submit_for("a" * 159 + "€", "Shop", "+4799999999")
    assert over.short_message == b"" and len(over.tlv(p.Tag.MESSAGE_PAYLOAD) or b"") == 161
    gsm = submit_for("a" * 160, "Shop", "+4799999999")
    assert gsm.short_message == b"a" * 160
    long_gsm = submit_for("a" * 161, "Shop", "+4799999999")
    assert long_gsm.short_message == b"" and long_gsm.tlv(p.Tag.MESSAGE_PAYLOAD) == b"a" * 161
    ucs2 = submit_for("Ж" * 70, "Shop", "+4799999999")
    assert (ucs2.data_coding, ucs2.short_message) == (8, "Ж".encode("utf-16-be") * 70)
    long_ucs2 = submit_for("Ж" * 71, "Shop", "+4799999999")
    assert long_ucs2.tlv(p.Tag.MESSAGE_PAYLOAD) == "Ж".encode("utf-16-be") * 71
    assert long_ucs2.registered_delivery == 1


def test_addresses_get_the_ton_a_careful_esme_gives_them() -> None:
    assert source_address("Shop") == ("Shop", 5, 0)
    assert source_address("2233") == ("2233", 3, 0)
    assert source_address("+4790000000") == ("4790000000", 1, 1)
    assert source_address("4790000000") == ("4790000000", 1, 1)
    assert destination_address("+4799999999") == ("4799999999", 1, 1)
    assert destination_address("099999999") == ("099999999", 0, 1)
    for bad in ("", "+", "47 99", "call-me", "٤٧٩٩"):
        with pytest.raises(ValueError):
            destination_address(bad)


def test_receipts_are_matched_by_tlv_or_by_text() -> None:
    text = format_receipt_text(
        message_id="123",
        sub=1,
        dlvrd=1,
        submit_date=0.0,
        done_date=0.0,
        stat="UNDELIV",
        err=222,
        text="hello",
    )
    by_text = p.DeliverSm(esm_class=p.ESM_CLASS_RECEIPT, short_message=text)
    receipt = receipt_for(by_text)
    assert receipt is not None
    assert (receipt.message_id, receipt.stat, receipt.err, receipt.final) == (
        "123",
        "UNDELIV",
        "222",
        True,
    )
    by_tlv = p.DeliverSm(
        esm_class=p.ESM_CLASS_RECEIPT,
        short_message=text,
        tlvs=[(p.Tag.RECEIPTED_MESSAGE_ID, b"abc\0")],
    )
    tlv_receipt = receipt_for(by_tlv)
    assert tlv_receipt is not None and tlv_receipt.message_id == "abc"
    assert receipt_for(p.DeliverSm(short_message=text)) is None  # esm_class 0: an MO


def test_status_names() -> None:
    assert status_name(0x0E) == "ESME_RINVPASWD (0x0000000E)"
    assert status_name(0x400) == "unknown status (0x00000400)"


def test_partner_gate_leaves_out_what_is_not_configured() -> None:
    gate = partner_gate(url="https://gw/cb", platform_id="P", platform_partner_id="PP")
    assert gate == {
        "type": "PARTNER_GATE",
        "gateType": "ONE_ORDERED",
        "platformId": "P",
        "platformPartnerId": "PP",
        "destinations": [{"url": "https://gw/cb", "contentType": "application/json"}],
    }


def test_ages_are_short() -> None:
    assert [queues.format_age(s) for s in (None, 0.4, 59, 61, 3599, 3600 * 5 + 60, 86400 * 3)] == [
        "-",
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "5h01m",
        "3d00h",
    ]


def test_queues_reads_a_store_without_changing_it(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE messages (account TEXT, connector TEXT, state INTEGER, submitted_at REAL);"
        "CREATE TABLE receipts (account TEXT, kind TEXT, done_date REAL);"
    )
    now = time.time()
    conn.executemany(
        "INSERT INTO messages VALUES (?, ?, ?, ?)",
        [("a", "c1", 0, now - 10), ("a", "c1", 0, now - 5), ("a", "c2", 1, now), ("b", "c1", 2, 0)],
    )
    conn.executemany(
        "INSERT INTO receipts VALUES (?, ?, ?)",
        [("a", "receipt", now - 7), ("b", "mo", now - 3), ("b", "mo", now - 1)],
    )
    conn.commit()
    conn.close()
    before = path.read_bytes()
    depths = queues.read_depths(path)
    assert [(d.kind, d.account, d.connector, d.count) for d in depths] == [
        ("mt_queued", "a", "c1", 2),
        ("mt_awaiting_report", "a", "c2", 1),
        ("receipts", "a", None, 1),
        ("mo", "b", None, 2),
    ]
    assert depths[0].oldest == pytest.approx(now - 10)
    assert queues.totals(depths)["mo"] == (2, pytest.approx(now - 3))
    assert path.read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["store.sqlite"]


def test_queues_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(queues.StoreMissing):
        queues.read_depths(tmp_path / "missing.sqlite")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).close()
    with pytest.raises(sqlite3.DatabaseError, match="not a gateway store"):
        queues.read_depths(other)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["send", "--config", "x.toml"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        cli.main(["gate"])
    assert exited.value.code == 2
    assert cli.main(["queues", "--config", "/nonexistent/gateway.toml"]) == 2
    assert "cannot read" in capsys.readouterr().err
