"""Allow `python -m phashfleet.cli`."""

from phashfleet.cli import main

main()
