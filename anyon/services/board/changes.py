"""Publishes committed changes to the event bus as the JSON Patch ops the UI's state streams apply.

Services call these after their transaction commits (never inside it), so a subscriber that
re-reads the database always sees what the event announced.
"""

from __future__ import annotations

import uuid

from anyon.services.board import events
from anyon.services.db import queries
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess, TaskAttempt
from anyon.services.db.serialize import process_json
from anyon.services.logs import jsonpatch


class ChangeNotifier:
    def __init__(self, database: Database, bus: events.EventBus) -> None:
        self._db = database
        self._bus = bus

    def task_changed(self, task_id: uuid.UUID) -> None:
        with self._db.connection():
            task = queries.task_with_status(task_id)
        if task is not None:
            self._bus.publish(events.tasks_topic(task["project_id"]), jsonpatch.task_upsert_ops(task))

    def task_deleted(self, project_id: uuid.UUID, task_id: uuid.UUID) -> None:
        self._bus.publish(events.tasks_topic(str(project_id)), jsonpatch.task_remove_ops(str(task_id)))

    def project_deleted(self, project_id: uuid.UUID) -> None:
        """Board subscribers of a deleted project get an empty board."""
        self._bus.publish(events.tasks_topic(str(project_id)), jsonpatch.tasks_snapshot_ops({}))

    def process_changed(self, process_id: uuid.UUID) -> None:
        """A process row changed: its attempt's timeline and its task's card both update."""
        with self._db.connection():
            process = ExecutionProcess.get_or_none(ExecutionProcess.id == process_id)
            if process is None:
                return
            payload = process_json(process)
            attempt = TaskAttempt.get_by_id(process.task_attempt_id)
            task_id = attempt.task_id
        self._bus.publish(
            events.processes_topic(str(process.task_attempt_id)), jsonpatch.process_ops(payload)
        )
        self.task_changed(task_id)
