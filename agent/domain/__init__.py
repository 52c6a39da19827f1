"""Plain values and pure functions: the spec, discovery of versions, routing, plans. No I/O here."""
