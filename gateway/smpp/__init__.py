"""The sans-IO SMPP core: PDUs, codec, session rules, text and receipts.

Nothing in this package imports Twisted or touches a socket or a clock; a test
enforces it.
"""
