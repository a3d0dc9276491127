"""`python -m phashfleet.worker.main ARGS`: Dramatiq's command line, logging the phashfleet way.

`phashfleet worker` execs this instead of `python -m dramatiq` so the main process and the forked
worker processes share one log format and level (see phashfleet/logs.py); Dramatiq is told to
leave logging alone (`--skip-logging`).
"""

import sys

from dramatiq.cli import main

from phashfleet import logs

if __name__ == "__main__":
    logs.setup()
    sys.exit(main())  # type: ignore[no-untyped-call]  # dramatiq.cli.main is untyped
