"""Tags: reusable prompt snippets (spec §1.7)."""

from __future__ import annotations

import uuid
from typing import Any

from anyon.services.db.database import Database
from anyon.services.db.models import Tag
from anyon.services.db.serialize import tag_json
from anyon.services.errors import NotFound, ServiceError
from anyon.services.team.access import owner_id


def _check_tag_name(name: str) -> str:
    if not name or any(ch.isspace() for ch in name):
        raise ServiceError("Tag name must be non-empty and contain no spaces")
    return name


def _check_content(content: str) -> str:
    if not content.strip():
        raise ServiceError("Tag content cannot be empty")
    return content


class TagService:
    def __init__(self, database: Database) -> None:
        self._db = database

    def list(self, search: str | None) -> list[dict[str, Any]]:
        with self._db.connection():
            rows = list(Tag.select().order_by(Tag.tag_name))
        if search:
            needle = search.lower()
            rows = [t for t in rows if needle in t.tag_name.lower()]
        return [tag_json(t) for t in rows]

    def _row(self, tag_id: uuid.UUID) -> Tag:
        tag = Tag.get_or_none(Tag.id == tag_id)
        if tag is None:
            raise NotFound(f"Tag {tag_id} not found")
        return tag

    def get(self, tag_id: uuid.UUID) -> dict[str, Any]:
        with self._db.connection():
            return tag_json(self._row(tag_id))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _check_tag_name(body["tag_name"])
        content = _check_content(body["content"])
        with self._db.connection(), self._db.atomic():
            return tag_json(Tag.create(tag_name=name, content=content, user_id=owner_id()))

    def update(self, tag_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        with self._db.connection(), self._db.atomic():
            tag = self._row(tag_id)
            if body.get("tag_name") is not None:
                tag.tag_name = _check_tag_name(body["tag_name"])
            if body.get("content") is not None:
                tag.content = _check_content(body["content"])
            tag.save()
            return tag_json(tag)

    def delete(self, tag_id: uuid.UUID) -> None:
        with self._db.connection(), self._db.atomic():
            self._row(tag_id).delete_instance()
