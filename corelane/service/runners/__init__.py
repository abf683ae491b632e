"""Where jobs execute: ``local`` runs them on the engine inside the web process (the embedded
default), ``celery`` on Celery workers across hosts; ``_work`` processes one image for either,
``fair`` decides which job's images go next, ``policy`` what an item runs with and what its
failure reads as; ``registry`` keeps the Celery workers' heartbeats in Redis, ``brokers`` reads
broker URLs (their kind, TLS, and how to show one without its password).

This package must not import Flask: its ``_work`` module is what engine workers import.
"""
