"""`smpp-gateway`: the operator's command line.

    smpp-gateway check-config FILE          validate a config; exit 0 if it would start
    smpp-gateway hash-password              read a password, print the hash for [[accounts]]
    smpp-gateway run --config FILE          the same as `twistd -n smpp-gateway --config FILE`
    smpp-gateway gate register|list|delete  LINK Gates that post reports and MO to us
    smpp-gateway send --config FILE ...     send one SMS through the running gateway
    smpp-gateway queues --config FILE       what waits in the store, and since when

Exit codes: 0 success; 1 the check or the request failed (invalid config, an
API error, a refused bind or submit); 2 usage or config error; `send` also 3
for a final receipt other than DELIVRD and 4 when no receipt came in time.

The commands are in `main`, `gate`, `queues` and `esme`; `common` holds what they share.
"""
