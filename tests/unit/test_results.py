"""DESIGN section 5 and Common's refusals (gateway.connectors.common.results): a
resultCode becomes a receipt's stat/err, a refused message a retry or a REJECTD,
and an `accept = "upstream"` account's ESME the status it is answered with.

Expected values are written out here, never read from the module's own tables.
"""

from __future__ import annotations

import pytest

from gateway.connectors.common.results import (
    COMMON_ERRORS,
    RESULT_CODES,
    SEND_REFUSALS,
    esme_status,
    merge_result_codes,
    outcome_for,
    refusal_is_temporary,
    rejection_outcome,
)
from gateway.intake.receipts import EXPIRED_IN_QUEUE
from gateway.records import Outcome
from gateway.smpp.pdu import CommandStatus, MessageState
from gateway.smpp.receipts import ERR_OUT_OF_RANGE, receipt_err

S = CommandStatus
M = MessageState


# --- section 5: resultCode -> stat/err ---------------------------------------------

SECTION_5 = [
    (1001, "DELIVRD", 0, True, M.DELIVERED),
    (1007, "DELIVRD", 0, True, M.DELIVERED),
    (1002, "EXPIRED", 220, True, M.EXPIRED),
    (1010, "EXPIRED", 220, True, M.EXPIRED),
    (1003, "DELETED", 221, True, M.DELETED),
    (1004, "UNDELIV", 222, True, M.UNDELIVERABLE),
    (1006, "UNDELIV", 222, True, M.UNDELIVERABLE),
    (1009, "UNDELIV", 222, True, M.UNDELIVERABLE),
    (1000, "ENROUTE", 0, False, M.ENROUTE),
    (1011, "ENROUTE", 0, False, M.ENROUTE),
    (1013, "ENROUTE", 0, False, M.ENROUTE),
    # Intermediate states are ENROUTE: SMPP 3.4's ACCEPTED is final (issue 14).
    (1005, "ENROUTE", 0, False, M.ENROUTE),
    (1008, "ENROUTE", 0, False, M.ENROUTE),
    (1012, "ENROUTE", 0, False, M.ENROUTE),
    (2104, "UNDELIV", 101, True, M.UNDELIVERABLE),
    (2105, "UNDELIV", 103, True, M.UNDELIVERABLE),
    (2107, "UNDELIV", 103, True, M.UNDELIVERABLE),
    (2106, "UNDELIV", 206, True, M.UNDELIVERABLE),
    (2108, "REJECTD", 206, True, M.REJECTED),
    (2000, "REJECTD", 939, True, M.REJECTED),
    (2001, "REJECTD", 943, True, M.REJECTED),
    (2002, "REJECTD", 943, True, M.REJECTED),
    (2003, "REJECTD", 943, True, M.REJECTED),
    (2100, "REJECTD", 945, True, M.REJECTED),
    (2101, "REJECTD", 945, True, M.REJECTED),
    (2102, "REJECTD", 945, True, M.REJECTED),
    (2103, "REJECTD", 904, True, M.REJECTED),
    (2200, "UNDELIV", 235, True, M.UNDELIVERABLE),
    (2201, "UNDELIV", 128, True, M.UNDELIVERABLE),
    (2207, "UNDELIV", 128, True, M.UNDELIVERABLE),
    (2202, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (2203, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (2204, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (2205, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (2206, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (3000, "REJECTD", 252, True, M.REJECTED),
    (3001, "REJECTD", 252, True, M.REJECTED),
    (3002, "REJECTD", 252, True, M.REJECTED),
    (4005, "REJECTD", 252, True, M.REJECTED),
    (4000, "REJECTD", 903, True, M.REJECTED),
    (4001, "REJECTD", 127, True, M.REJECTED),
    (4002, "REJECTD", 127, True, M.REJECTED),
    (4003, "REJECTD", 127, True, M.REJECTED),
    (4004, "REJECTD", 127, True, M.REJECTED),
    (4006, "REJECTD", 127, True, M.REJECTED),
    (4007, "REJECTD", 225, True, M.REJECTED),
    (0, "UNKNOWN", 255, True, M.UNKNOWN),
    (5, "UNKNOWN", 255, True, M.UNKNOWN),
    (1, "UNDELIV", 108, True, M.UNDELIVERABLE),
    (2, "UNDELIV", 108, True, M.UNDELIVERABLE),
    (6, "UNDELIV", 108, True, M.UNDELIVERABLE),
    (3, "REJECTD", 949, True, M.REJECTED),
    (106, "REJECTD", 949, True, M.REJECTED),
    (4, "EXPIRED", 10, True, M.EXPIRED),
    (104, "REJECTD", 236, True, M.REJECTED),
    (105, "UNDELIV", 254, True, M.UNDELIVERABLE),
]


@pytest.mark.parametrize(("code", "stat", "err", "final", "state"), SECTION_5)
def test_result_code_row(code: int, stat: str, err: int, final: bool, state: MessageState) -> None:
    # 1007 "delivered, billed delayed": DELIVRD now, the message open for its billing.
    assert outcome_for(code) == Outcome(stat, err, final, state, billing_pending=code == 1007)


def test_result_codes_has_exactly_the_design_rows() -> None:
    assert sorted(RESULT_CODES) == sorted(row[0] for row in SECTION_5)


@pytest.mark.parametrize("code", [7, 99, 1014, 21080, 5000, -1, 106001])
def test_any_other_code(code: int) -> None:
    assert outcome_for(code) == Outcome("UNKNOWN", 255, True, M.UNKNOWN)


def test_merge_result_codes() -> None:
    merged = merge_result_codes({1001: ("UNDELIV", 1, True), 9999: ("DELIVRD", 0, True)})
    assert outcome_for(1001, merged) == Outcome("UNDELIV", 1, True, M.UNDELIVERABLE)
    assert outcome_for(9999, merged) == Outcome("DELIVRD", 0, True, M.DELIVERED)
    assert outcome_for(1002, merged) == Outcome("EXPIRED", 220, True, M.EXPIRED)
    assert outcome_for(1001) == Outcome("DELIVRD", 0, True, M.DELIVERED)


@pytest.mark.parametrize(
    "override",
    [("FAILED", 1, True), ("delivrd", 0, True), ("UNDELIV", 1000, True), ("UNDELIV", -1, True)],
)
def test_merge_result_codes_refuses_bad_rows(override: tuple[str, int, bool]) -> None:
    with pytest.raises(ValueError):
        merge_result_codes({1001: override})


# --- section 5: receipts the gateway makes ---------------------------------------


def test_expired_in_queue() -> None:
    assert Outcome("EXPIRED", 220, True, M.EXPIRED) == EXPIRED_IN_QUEUE


COMMON_ERROR_ROWS = [
    (101100, 236, True),
    (101101, 236, True),
    (106000, 255, False),
    (106001, 127, False),
    (106102, 236, True),
    (106200, 236, True),
    (106201, 236, True),
    (106202, 236, True),
    (106300, 236, True),
    (106301, 236, True),
]


@pytest.mark.parametrize(("code", "err", "misconfiguration"), COMMON_ERROR_ROWS)
def test_common_error_rows(code: int, err: int, misconfiguration: bool) -> None:
    assert COMMON_ERRORS[code] == (err, misconfiguration)
    assert rejection_outcome(code) == (Outcome("REJECTD", err, True, M.REJECTED), misconfiguration)


def test_common_errors_has_exactly_those_rows() -> None:
    assert sorted(COMMON_ERRORS) == [row[0] for row in COMMON_ERROR_ROWS]


@pytest.mark.parametrize(
    ("code", "err", "misconfiguration"),
    [
        (None, 255, False),
        (2108, 206, False),  # a delivery-report code in the send answer keeps its err
        (4003, 127, False),
        (104, 236, True),
        (1001, 255, False),
        (1005, 255, False),
        (123456, 255, False),
    ],
)
def test_rejection_outcome(code: int | None, err: int, misconfiguration: bool) -> None:
    assert rejection_outcome(code) == (Outcome("REJECTD", err, True, M.REJECTED), misconfiguration)


# --- accept = "upstream" ------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_status", "common_code", "temporary", "status"),
    [
        # temporary trouble: only 0x58, 0x14, 0x08
        (None, None, True, S.ESME_RMSGQFUL),  # timeout / connection refused
        (408, None, True, S.ESME_RMSGQFUL),
        (429, None, True, S.ESME_RTHROTTLED),
        (429, None, False, S.ESME_RTHROTTLED),
        (500, None, True, S.ESME_RSYSERR),
        (502, None, False, S.ESME_RSYSERR),
        (503, 106000, True, S.ESME_RSYSERR),
        (400, 2000, True, S.ESME_RSYSERR),
        # permanent refusals by Common code
        (400, 2000, False, S.ESME_RINVSRCADR),
        (400, 2001, False, S.ESME_RINVSRCTON),
        (400, 2002, False, S.ESME_RINVSRCTON),
        (400, 2003, False, S.ESME_RINVSRCTON),
        (400, 2100, False, S.ESME_RINVDSTTON),
        (400, 2101, False, S.ESME_RINVDSTTON),
        (400, 2102, False, S.ESME_RINVDSTTON),
        (400, 2104, False, S.ESME_RINVDSTADR),
        (400, 2106, False, S.ESME_RINVDSTADR),
        (400, 2108, False, S.ESME_RINVDSTADR),
        (400, 4001, False, S.ESME_RINVMSGLEN),
        (400, 4003, False, S.ESME_RINVMSGLEN),
        (400, 4004, False, S.ESME_RINVESMCLASS),
        (400, 3, False, S.ESME_RTHROTTLED),
        (401, 101100, False, S.ESME_RSYSERR),
        (403, 101101, False, S.ESME_RSYSERR),
        (400, 106102, False, S.ESME_RSYSERR),
        (400, 106200, False, S.ESME_RSYSERR),
        (400, 106201, False, S.ESME_RSYSERR),
        (400, 106202, False, S.ESME_RSYSERR),
        (400, 106300, False, S.ESME_RSYSERR),
        (400, 106301, False, S.ESME_RSYSERR),
        (400, 106001, False, S.ESME_RSUBMITFAIL),
        (400, 106000, False, S.ESME_RSUBMITFAIL),
        (400, 3000, False, S.ESME_RSUBMITFAIL),
        (400, 4002, False, S.ESME_RSUBMITFAIL),
        # permanent refusals by HTTP status alone
        (400, None, False, S.ESME_RSUBMITFAIL),
        (401, None, False, S.ESME_RSYSERR),
        (403, None, False, S.ESME_RSYSERR),
        (404, None, False, S.ESME_RSYSERR),
        (413, None, False, S.ESME_RINVMSGLEN),
        (422, None, False, S.ESME_RSUBMITFAIL),
        (None, 2104, False, S.ESME_RINVDSTADR),
        (None, None, False, S.ESME_RSUBMITFAIL),
    ],
)
def test_esme_status(
    http_status: int | None, common_code: int | None, temporary: bool, status: int
) -> None:
    assert (
        esme_status(http_status=http_status, common_code=common_code, temporary=temporary) == status
    )


# --- issue 14: where the mapping disagreed with LINK's documents ------------------


@pytest.mark.parametrize(
    ("code", "temporary"),
    [
        (None, None),
        (1000, None),
        (1005, None),
        (1013, None),
        (0, True),
        (1, True),
        (3, True),
        (4, True),
        (5, True),
        (105, True),
        (2, False),
        (6, False),
        (104, False),
        (106, False),
        (1014, False),
        (2104, False),
        (106001, False),
        (42, False),
    ],
)
def test_a_message_common_did_not_take_is_retried_or_rejected_by_its_code(
    code: int | None, temporary: bool | None
) -> None:
    assert refusal_is_temporary(code) is temporary


def test_send_refusals_has_exactly_those_rows() -> None:
    assert dict(SEND_REFUSALS) == {
        0: True,
        1: True,
        2: False,
        3: True,
        4: True,
        5: True,
        6: False,
        104: False,
        105: True,
        106: False,
    }


def test_the_tables_are_read_only() -> None:
    merged = merge_result_codes({1001: ("UNDELIV", 1, True)})
    for table in (RESULT_CODES, COMMON_ERRORS, SEND_REFUSALS, merged):
        with pytest.raises(TypeError):
            table[1001] = table[next(iter(table))]  # type: ignore[index]


@pytest.mark.parametrize(("code", "err"), [(106, 949), (104, 236), (2, 108), (6, 108)])
def test_final_refusals_take_the_report_tables_err(code: int, err: int) -> None:
    outcome, misconfigured = rejection_outcome(code)
    assert (outcome.stat, outcome.err) == ("REJECTD", err)
    assert misconfigured == (code == 104)


def test_a_temporary_throttling_refusal_is_rthrottled_for_upstream_accounts() -> None:
    assert esme_status(http_status=None, common_code=3, temporary=True) == S.ESME_RTHROTTLED
    assert esme_status(http_status=400, common_code=3, temporary=True) == S.ESME_RTHROTTLED
    assert esme_status(http_status=None, common_code=105, temporary=True) == S.ESME_RMSGQFUL


@pytest.mark.parametrize(
    ("err", "written"), [(0, 0), (999, 999), (1000, 99), (65535, 99), (-1, 99)]
)
def test_an_err_that_does_not_fit_three_digits_is_099_not_999(err: int, written: int) -> None:
    assert receipt_err(err) == written
    assert ERR_OUT_OF_RANGE == 99
