"""Demos that show corelane at work; ``corelane demo <name>`` runs them.

``pathfinding`` holds the pure A* functions (no pygame); ``pathfinding_game`` is the Pygame scene
that plans paths either on the frame loop or through :class:`corelane.Offloader`.
"""
