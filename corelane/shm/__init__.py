"""Shared memory with one owner per segment: SharedArray / share, SharedCounter, SharedValue."""

from corelane.shm.array import SharedArray, share
from corelane.shm.counter import SharedCounter, SharedValue

__all__ = ["SharedArray", "SharedCounter", "SharedValue", "share"]
