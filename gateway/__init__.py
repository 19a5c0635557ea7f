"""SMPP 3.4 gateway in front of LINK Mobility's Common REST API."""

__version__ = "0.1.0"
