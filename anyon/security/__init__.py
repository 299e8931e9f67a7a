"""Secrets and the API token check for a server reachable from other machines.

Kept apart from the API so that the start-up checks and ``anyon doctor`` can use the same rules
(who may read a secret file, where a secret comes from) without importing Falcon.
"""
