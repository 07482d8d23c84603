"""Serving: the HTTP API and per-pair model deployments on Ray Serve, and the live prediction loop.

The Serve config is generated from the ``symbols`` and ``models`` tables (:mod:`.config`) and
applied declaratively (:mod:`.deploy`), so what runs always follows the database.
"""
