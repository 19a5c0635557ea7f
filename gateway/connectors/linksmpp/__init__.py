"""LINK's own SMPP endpoint as a second route (seed 004, DESIGN 6).

- `settings`: every knob of the route, with LINK's figures as defaults.
- `mapping`: sans-IO; messages -> submit_sm, statuses -> outcomes, deliver_sm ->
  receipts and MO, the id forms receipts are matched by.
- `connector`: `LinkSmppConnector`, the thin Twisted client (ClientService, TLS,
  window, rate, throttling, reconnect delay).

Nothing is imported here: gateway.config imports `settings`, and the connector
imports gateway.config.
"""
