"""Adapters that fit the engine into other programs' loops.

``pygame`` holds :class:`Offloader`, non-blocking submit/poll for frame loops. Despite its name it
does not import pygame: any loop that must not block (a game, a GUI, a simulation tick) can use it.
"""
