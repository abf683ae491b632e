"""Process-aware logging: records logged in workers reach the parent's handlers.

The machinery lives in :mod:`corelane.engine._logs` (the engine uses it for
``Pool(log_level=...)``, and a lower layer must not import a higher one); this module is its
public face for plain ``multiprocessing`` code.
"""

from corelane.engine._logs import (
    LogForwarder,
    WorkerLogConfig,
    WorkerLogs,
    configure_worker,
    forward_worker_logs,
)

__all__ = ["LogForwarder", "WorkerLogConfig", "WorkerLogs", "configure_worker", "forward_worker_logs"]
