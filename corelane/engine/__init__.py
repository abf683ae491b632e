"""The process pool: corelane's engine. See pool.py for how data flows."""

from corelane.engine.api import imap, imap_unordered, map
from corelane.engine.pool import Pool
from corelane.engine.results import Failure
from corelane.engine.worker import worker_state

__all__ = ["Failure", "Pool", "imap", "imap_unordered", "map", "worker_state"]
