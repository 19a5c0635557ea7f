"""twistd plugin: `twistd -n smpp-gateway --config FILE`. The code lives in gateway.tap."""

from twisted.application.service import ServiceMaker

smpp_gateway = ServiceMaker(
    "SMPP gateway",
    "gateway.tap",
    "SMPP 3.4 server in front of LINK Mobility's Common REST API",
    "smpp-gateway",
)
