"""Remote stores: which store a call means, the remote's index cache, transfers, the read-through cache."""
