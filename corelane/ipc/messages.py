"""MessageType: the one vocabulary of envelopes between the parts of a pipeline (and your queues).

Every message is a ``(MessageType, payload)`` pair, a :class:`Message`. Members are ``str``-valued,
so they compare, print and serialize as plain strings, and a typo is an AttributeError rather than
a message nobody handles (the tutorial's point, minus its magic sentinels).

::

    DATA   payload: one item for the next consumer
    DONE   payload: None; the sender has nothing more. A consumer stops at the first DONE it sees,
           so N consumers of one queue need N DONEs (a Pipeline needs none of this: each of
           its links has exactly one reader).
    ERROR  payload: the exception that stopped the sender; the receiver stops and re-raises it
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple


class MessageType(StrEnum):
    """The kind of a message between processes (or threads)."""

    DATA = "data"
    DONE = "done"
    ERROR = "error"


class Message(NamedTuple):
    """One envelope: its kind, then its payload."""

    type: MessageType
    payload: Any = None


DONE = Message(MessageType.DONE)
