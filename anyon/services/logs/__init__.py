"""Process output and live streams: what an execution printed, kept and replayed, and the frames of every
live view.

Owns the stored logs (``logstore``), the per-process in-memory store the log streams follow
(``msgstore``; its messages in ``logmsg``, its spill file in ``spill``), the cap on stored output
(``logcap``), the JSON Patch ops and WebSocket frames all live views are built from (``jsonpatch``), and the
live diff of an attempt's worktree (``diffstream``).

May import ``db`` and ``git`` (the diff stream reads the worktree through ``GitService``). It knows nothing
of WebSockets or of the board: the API sends what these produce; the normalisers and the board import
``jsonpatch`` from here.
"""
