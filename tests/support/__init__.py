"""What many tests share: one factory per record, in-memory peers, strategies."""
