"""LINK's own SMPP endpoint as a second route (seed 004, DESIGN 6).

- `settings`: every knob of the route, with LINK's figures as defaults.
- `mapping`: sans-IO; messages -> submit_sm, statuses -> outcomes, deliver_sm ->
  receipts and MO, the id forms receipts are matched by.
- `link`: one bind kept up by a ClientService (TLS, bind, reconnect delay).
- `sending`: the send queue (window, rate, throttling, segments, outcomes).
- `connector`: `LinkSmppConnector`, the `Connector` built of those, and what
  LINK delivers handed to the intake.

Nothing is imported here: gateway.config imports `settings`, and the connector
imports gateway.config.
"""
