"""Where jobs execute. ``local`` runs them on the engine inside the web process.

This package must not import Flask: its ``_work`` module is what engine workers import.
"""
