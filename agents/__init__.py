"""Faust wiring: the app, its topics and table, and one thin agent per hop.

Agents decode raw bytes, call the pure stages in ``streams``, and send, write or buffer what
comes out. ``create_app`` builds everything from the settings, so tests can build an app with
``memory://`` broker settings and drive agents through Faust's test context.
"""
