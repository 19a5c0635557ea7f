"""Hypothesis strategies for PDUs: any field the layout allows, any TLV, any PDU."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from gateway.smpp import layout
from gateway.smpp import pdu as p
from gateway.smpp.layout import FIELDS, KNOWN_TAGS, TLV_SPECS, Kind
from gateway.smpp.pdu import PDU_CLASSES

# Latin-1 without NUL: what a C-octet string can carry.
C_CHARS = st.characters(min_codepoint=1, max_codepoint=255)


def c_string(size: int) -> st.SearchStrategy[str]:
    return st.text(C_CHARS, max_size=size - 1)


def dest_address() -> st.SearchStrategy[p.DestAddress]:
    sme = st.builds(
        p.DestAddress,
        dest_flag=st.just(layout.DEST_FLAG_SME),
        dest_addr_ton=st.integers(0, 255),
        dest_addr_npi=st.integers(0, 255),
        destination_addr=c_string(layout.DEST_ADDR_MAX),
    )
    distribution_list = st.builds(
        p.DestAddress, dest_flag=st.just(layout.DEST_FLAG_DISTRIBUTION_LIST), dl_name=c_string(21)
    )
    return st.one_of(sme, distribution_list)


UNSUCCESS_SME = st.builds(
    p.UnsuccessSme,
    dest_addr_ton=st.integers(0, 255),
    dest_addr_npi=st.integers(0, 255),
    destination_addr=c_string(layout.DEST_ADDR_MAX),
    error_status_code=st.integers(0, 0xFFFFFFFF),
)


def field_strategy(spec: layout.FieldSpec) -> st.SearchStrategy[Any]:
    if spec.kind is Kind.INT:
        return st.integers(0, (1 << (8 * spec.size)) - 1)
    if spec.kind in (Kind.CSTRING, Kind.ANY_CSTRING):
        return c_string(spec.size)
    if spec.kind is Kind.TIME:
        return st.one_of(st.just(""), st.text(C_CHARS, min_size=16, max_size=16))
    if spec.kind is Kind.SHORT_MESSAGE:
        return st.binary(max_size=spec.size)
    if spec.kind is Kind.DEST_ADDRESSES:
        # SME addresses and distribution lists mixed, at least one (SMPP 3.4 4.5.1).
        return st.lists(dest_address(), min_size=1, max_size=8)
    return st.lists(UNSUCCESS_SME, max_size=5)


@st.composite
def tlv(draw: st.DrawFn) -> tuple[int, bytes]:
    if draw(st.booleans()):
        tag = draw(st.sampled_from(sorted(KNOWN_TAGS)))
        spec = TLV_SPECS[tag]
        value = draw(st.binary(min_size=spec.min_length, max_size=min(spec.max_length, 300)))
        return tag, value
    unknown = st.integers(0, 0xFFFF).filter(lambda tag: tag not in KNOWN_TAGS)
    return draw(unknown), draw(st.binary(max_size=40))


TLVS = st.lists(tlv(), max_size=4)


@st.composite
def any_pdu(draw: st.DrawFn, cls: type[p.Pdu] | None = None) -> p.Pdu:
    if cls is None:
        cls = draw(st.sampled_from(list(PDU_CLASSES.values())))
    values = {spec.name: draw(field_strategy(spec)) for spec in FIELDS[cls]}
    status = draw(st.one_of(st.just(0), st.integers(0, 0xFFFFFFFF)))
    return cls(sequence=draw(st.integers(0, 0xFFFFFFFF)), status=status, tlvs=draw(TLVS), **values)


def submit(**overrides: object) -> p.SubmitSm:
    """A submit_sm from the sender name "Shop" to +4799999999 saying "Hello"."""
    fields: dict[str, object] = {
        "source_addr": "Shop",
        "source_addr_ton": 5,
        "destination_addr": "4799999999",
        "dest_addr_ton": 1,
        "short_message": b"Hello",
    }
    fields.update(overrides)
    return p.SubmitSm(**fields)  # type: ignore[arg-type]
