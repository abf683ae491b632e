"""The image web service (``corelane serve``): Flask + Socket.IO over the engine.

Importing this package is cheap and imports no web framework; ``create_app`` lives in
:mod:`corelane.service.app`.
"""
