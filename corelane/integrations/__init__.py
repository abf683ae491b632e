"""Adapters that fit the engine into other programs' loops.

``pygame`` holds :class:`Offloader`, non-blocking submit/poll for frame loops. Despite its name it
does not import pygame: any loop that must not block (a game, a GUI, a simulation tick) can use it.

``joblib`` registers the ``"corelane"`` joblib backend when imported, so scikit-learn's ``n_jobs``
and ``joblib.Parallel`` run on a Pool whose dead workers cost a retry, not the whole call.
"""
