"""Common's codes as data: resultCode -> receipt, refusals -> retry or REJECTD, ESME statuses.

Responsible for DESIGN section 5 (a delivery report's resultCode -> the
receipt's stat and err, `RESULT_CODES`), for what a message Common did not
take becomes (`SEND_REFUSALS`, `rejection_outcome`), and for the submit_sm_resp
status an `accept = "upstream"` account gets from Common's answer
(`esme_status`). The err values are LINK's own SMPP codes (seed 004), so an
ESME sees the same err whichever route its message took.

What always holds: every table is a literal, read-only mapping built at import;
config overrides make a new mapping (`merge_result_codes`), they never mutate
these.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from gateway.records import Outcome
from gateway.smpp.pdu import CommandStatus
from gateway.smpp.receipts import ERR_MAX, STAT_STATE

_S = CommandStatus


# --- resultCode -> receipt (DESIGN section 5) -------------------------------


def _outcome(stat: str, err: int, final: bool, *, billing_pending: bool = False) -> Outcome:
    return Outcome(stat, err, final, STAT_STATE[stat], billing_pending)


_DELIVERED = _outcome("DELIVRD", 0, True)
# Intermediate notifications say ENROUTE (message_state 1): SMPP 3.4 defines
# ACCEPTED as a final state, and LINK's SMPP route sends ACCEPTD as final.
_ENROUTE = _outcome("ENROUTE", 0, False)

RESULT_CODES: Final[Mapping[int, Outcome]] = MappingProxyType(
    {
        1001: _DELIVERED,
        1007: _outcome("DELIVRD", 0, True, billing_pending=True),
        1002: _outcome("EXPIRED", 220, True),
        1010: _outcome("EXPIRED", 220, True),
        1003: _outcome("DELETED", 221, True),
        1004: _outcome("UNDELIV", 222, True),
        1006: _outcome("UNDELIV", 222, True),
        1009: _outcome("UNDELIV", 222, True),
        1000: _ENROUTE,
        1011: _ENROUTE,
        1013: _ENROUTE,
        1005: _ENROUTE,
        1008: _ENROUTE,
        1012: _ENROUTE,
        2104: _outcome("UNDELIV", 101, True),
        2105: _outcome("UNDELIV", 103, True),
        2107: _outcome("UNDELIV", 103, True),
        2106: _outcome("UNDELIV", 206, True),
        2108: _outcome("REJECTD", 206, True),
        2000: _outcome("REJECTD", 939, True),
        2001: _outcome("REJECTD", 943, True),
        2002: _outcome("REJECTD", 943, True),
        2003: _outcome("REJECTD", 943, True),
        2100: _outcome("REJECTD", 945, True),
        2101: _outcome("REJECTD", 945, True),
        2102: _outcome("REJECTD", 945, True),
        2103: _outcome("REJECTD", 904, True),
        2200: _outcome("UNDELIV", 235, True),
        2201: _outcome("UNDELIV", 128, True),
        2207: _outcome("UNDELIV", 128, True),
        2202: _outcome("UNDELIV", 232, True),
        2203: _outcome("UNDELIV", 232, True),
        2204: _outcome("UNDELIV", 232, True),
        2205: _outcome("UNDELIV", 232, True),
        2206: _outcome("UNDELIV", 232, True),
        3000: _outcome("REJECTD", 252, True),
        3001: _outcome("REJECTD", 252, True),
        3002: _outcome("REJECTD", 252, True),
        4005: _outcome("REJECTD", 252, True),
        4000: _outcome("REJECTD", 903, True),
        4001: _outcome("REJECTD", 127, True),
        4002: _outcome("REJECTD", 127, True),
        4003: _outcome("REJECTD", 127, True),
        4004: _outcome("REJECTD", 127, True),
        4006: _outcome("REJECTD", 127, True),
        4007: _outcome("REJECTD", 225, True),
        0: _outcome("UNKNOWN", 255, True),
        5: _outcome("UNKNOWN", 255, True),
        1: _outcome("UNDELIV", 108, True),
        2: _outcome("UNDELIV", 108, True),
        6: _outcome("UNDELIV", 108, True),
        3: _outcome("REJECTD", 949, True),
        106: _outcome("REJECTD", 949, True),
        4: _outcome("EXPIRED", 10, True),
        104: _outcome("REJECTD", 236, True),
        105: _outcome("UNDELIV", 254, True),
    }
)

UNKNOWN_OUTCOME: Final = _outcome("UNKNOWN", 255, True)

# Result codes Common may give a message it did not take (its answer carries no
# messageId, in /sms/send's answer or an item of /sms/sendbatch's): True to retry
# it with backoff until its validity ends, False for a final REJECTD receipt
# with the err of the report table (RESULT_CODES), e.g. 106 -> 949, 104 -> 236.
# Codes 1000-1013 say where a taken message is: accepted. 2000-4007 (content,
# addresses, billing) and Common's error codes (1xxxxx) are final, as is any
# code not listed.
SEND_REFUSALS: Final[Mapping[int, bool]] = MappingProxyType(
    {
        0: True,  # unknown error: nothing says it would fail again
        1: True,  # temporary routing error
        2: False,  # permanent routing error
        3: True,  # throttling exceeded: LINK asks us to slow down
        4: True,  # timeout
        5: True,  # operator unknown error
        6: False,  # operator error
        104: False,  # configuration error: ours to fix (alert)
        105: True,  # LINK's internal error
        106: False,  # quota exceeded
    }
)


def refusal_is_temporary(code: int | None) -> bool | None:
    """For a message Common answered without a messageId: None when the code says
    it was taken (1000-1013, or no code), else whether the refusal is worth a retry."""
    if code is None or 1000 <= code <= 1013:
        return None
    return SEND_REFUSALS.get(code, False)


def outcome_for(code: int, table: Mapping[int, Outcome] = RESULT_CODES) -> Outcome:
    """The receipt for a delivery-report resultCode; UNKNOWN/255 for any other code."""
    return table.get(code, UNKNOWN_OUTCOME)


def merge_result_codes(overrides: Mapping[int, tuple[str, int, bool]]) -> Mapping[int, Outcome]:
    """RESULT_CODES with config rows (code -> (stat, err, final)) laid over it.

    ValueError names the first bad row: an unknown stat word or an err that
    does not fit the receipt's three digits.
    """
    merged = dict(RESULT_CODES)
    for code, (stat, err, final) in overrides.items():
        if stat not in STAT_STATE:
            raise ValueError(
                f"result code {code}: stat {stat!r} is not one of {sorted(STAT_STATE)}"
            )
        if not 0 <= err <= ERR_MAX:
            raise ValueError(f"result code {code}: err {err} is not 0-{ERR_MAX}")
        merged[code] = _outcome(stat, err, bool(final))
    return MappingProxyType(merged)


# --- Common's refusals of a request ------------------------------------------

# Common error resultCodes (seed 001, "Error Result Codes") -> (err, whether
# it is the account's misconfiguration, which deserves an alert, not just a
# REJECTD). Everything that names a credential, platform, currency or gate
# setting is ours to fix: 236 is LINK's "configuration error" err.
COMMON_ERRORS: Final[Mapping[int, tuple[int, bool]]] = MappingProxyType(
    {
        101100: (236, True),  # invalid authentication
        101101: (236, True),  # access denied
        106000: (255, False),  # unknown error
        106001: (127, False),  # parse error: the request's content
        106102: (236, True),  # unable to access SMSC credentials
        106200: (236, True),  # invalid or missing platformId
        106201: (236, True),  # invalid or missing platformPartnerId
        106202: (236, True),  # invalid or missing currency (comes from the account)
        106300: (236, True),  # no gates available
        106301: (236, True),  # specified gate unavailable
    }
)

_REJECTED_UNKNOWN: Final = _outcome("REJECTD", 255, True)


def rejection_outcome(
    common_code: int | None, table: Mapping[int, Outcome] = RESULT_CODES
) -> tuple[Outcome, bool]:
    """(receipt, is_misconfiguration) for a request Common refused (stored mode).

    Always REJECTD: the message never left. The err comes from COMMON_ERRORS,
    else from the delivery-report table if Common answered with one of those
    codes, else 255.
    """
    if common_code is None:
        return _REJECTED_UNKNOWN, False
    known = COMMON_ERRORS.get(common_code)
    if known is not None:
        return _outcome("REJECTD", known[0], True), known[1]
    row = table.get(common_code)
    if row is not None and row.final and row.stat != "DELIVRD":
        return _outcome("REJECTD", row.err, True), row.err == 236
    return _REJECTED_UNKNOWN, False


# --- accept = "upstream": upstream trouble -> command_status ----------------

# Permanent refusals by Common code. Misconfiguration becomes RSYSERR: the
# message is fine and the ESME should retry once the account is fixed, and 0x08
# is one of the statuses ESMEs such as Kannel retry (SMPP-NOTES section 3).
UPSTREAM_CODE_STATUS: Final[Mapping[int, CommandStatus]] = MappingProxyType(
    {
        2000: _S.ESME_RINVSRCADR,
        2001: _S.ESME_RINVSRCTON,
        2002: _S.ESME_RINVSRCTON,
        2003: _S.ESME_RINVSRCTON,
        2100: _S.ESME_RINVDSTTON,
        2101: _S.ESME_RINVDSTTON,
        2102: _S.ESME_RINVDSTTON,
        2104: _S.ESME_RINVDSTADR,
        2106: _S.ESME_RINVDSTADR,
        2108: _S.ESME_RINVDSTADR,
        4001: _S.ESME_RINVMSGLEN,
        4003: _S.ESME_RINVMSGLEN,
        4004: _S.ESME_RINVESMCLASS,
        3: _S.ESME_RTHROTTLED,
        101100: _S.ESME_RSYSERR,
        101101: _S.ESME_RSYSERR,
        106102: _S.ESME_RSYSERR,
        106200: _S.ESME_RSYSERR,
        106201: _S.ESME_RSYSERR,
        106202: _S.ESME_RSYSERR,
        106300: _S.ESME_RSYSERR,
        106301: _S.ESME_RSYSERR,
    }
)

# By HTTP status when Common gave no code we know. 401/403/404 are our
# credentials or URL (misconfiguration, see above); 408/429/5xx temporary.
UPSTREAM_HTTP_STATUS: Final[Mapping[int, CommandStatus]] = MappingProxyType(
    {
        401: _S.ESME_RSYSERR,
        403: _S.ESME_RSYSERR,
        404: _S.ESME_RSYSERR,
        408: _S.ESME_RMSGQFUL,
        413: _S.ESME_RINVMSGLEN,
        429: _S.ESME_RTHROTTLED,
    }
)


def esme_status(
    *, http_status: int | None, common_code: int | None, temporary: bool
) -> CommandStatus:
    """The submit_sm_resp status when Common did not take a message (accept = "upstream").

    Temporary trouble is always 0x58, 0x14 or 0x08, the statuses ESMEs retry:
    429 or result code 3 (throttling) -> RTHROTTLED; timeouts, connection
    failures and temporary refusals of a message in a 200 answer (no HTTP
    error) -> RMSGQFUL, which also makes Kannel pause before resending; 5xx and
    temporary refusals in an HTTP error -> RSYSERR. Permanent refusals:
    UPSTREAM_CODE_STATUS by Common code, then UPSTREAM_HTTP_STATUS, else
    RSUBMITFAIL.
    """
    if http_status == 429 or (temporary and common_code == 3):
        return _S.ESME_RTHROTTLED
    if temporary or (http_status is not None and http_status >= 500):
        if http_status is None or http_status == 408:
            return _S.ESME_RMSGQFUL
        return _S.ESME_RSYSERR
    if common_code is not None:
        status = UPSTREAM_CODE_STATUS.get(common_code)
        if status is not None:
            return status
    if http_status is None:
        return _S.ESME_RSUBMITFAIL
    return UPSTREAM_HTTP_STATUS.get(http_status, _S.ESME_RSUBMITFAIL)


__all__ = [
    "COMMON_ERRORS",
    "RESULT_CODES",
    "SEND_REFUSALS",
    "UNKNOWN_OUTCOME",
    "UPSTREAM_CODE_STATUS",
    "UPSTREAM_HTTP_STATUS",
    "esme_status",
    "merge_result_codes",
    "outcome_for",
    "refusal_is_temporary",
    "rejection_outcome",
]
