"""Notification sounds and the "process finished" notice (spec §1.1 ``/api/sounds``, §5.3 finalise).

Owns the sound catalogue (synthesised here, so no third-party recordings ship with the package) and the
notifier that tells the user on the server's own desktop when an attempt has finished. Imports only the
database models and the user config service; nothing here knows about HTTP.
"""
