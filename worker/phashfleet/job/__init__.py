"""A PhashJob as data and decisions: its spec, batch dispatch, status and finish."""
