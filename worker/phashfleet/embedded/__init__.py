"""`phashfleet run`: one PhashJob on this machine, embedded or with local worker processes."""
