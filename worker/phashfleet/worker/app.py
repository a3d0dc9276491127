"""The module the Dramatiq CLI loads in each worker process: the broker, then the actor."""

from phashfleet.worker.actor import declare
from phashfleet.worker.broker import install_broker, make_broker

broker = install_broker(make_broker(prometheus=True))
hash_batch = declare(broker)
