"""Health, info, UI config, profiles and the auth routes (spec §1.1, §1.2)."""

from __future__ import annotations

from typing import Any

import falcon.asgi

from anyon.api.envelope import ApiError, soft_error
from anyon.api.http import raw_json, read_body, respond, run_sync
from anyon.api.openapi.document import build_document
from anyon.api.validation import api_operation, decode_json_text
from anyon.services.agents.profile_catalog import ProfileError
from anyon.services.container import Services
from anyon.services.errors import ServiceError
from anyon.services.system_info import analytics_user_id, environment

_NEEDS_INTERNET = (
    "{what} needs a connection to {service}, which this server does not make; "
    "use the dev login or configure credentials on the server."
)


class Health:
    @api_operation(data="HealthOk")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, "OK")


class Info:
    def __init__(self, services: Services, is_cloud: bool) -> None:
        self._services = services
        self._is_cloud = is_cloud
        self._environment = environment()
        self._analytics_user_id = analytics_user_id()

    @api_operation(data="UserSystemInfo")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        services = self._services
        payload = {
            "config": services.user_config.get(),
            "analytics_user_id": self._analytics_user_id,
            "executors": services.profiles.profiles_json(),
            "environment": self._environment,
            **services.user_config.secret_states(),
            "is_cloud": self._is_cloud,
            "capabilities": services.profiles.capabilities(),
        }
        respond(resp, payload)


class UserConfig:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(body="Config", data="Config")
    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Saves the config; the first disclaimer acknowledgement also offers existing repositories."""
        body = await raw_json(req)
        onboarding = self._services.onboarding
        saved, first_acknowledgement = await run_sync(onboarding.save_config, body)
        if first_acknowledgement:
            onboarding.start_auto_setup()
        respond(resp, saved)


class Profiles:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="ProfilesContent")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        profiles = self._services.profiles
        respond(resp, {"content": profiles.profiles_text(), "path": str(profiles.profiles_path)})

    @api_operation(body="ExecutorConfigs", data="string")
    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """The raw profiles JSON; not UTF-8, nested too deeply, NULs or unknown keys: a soft error."""
        raw = await read_body(req, req.context.max_body_bytes)
        try:
            text, _value = decode_json_text(raw)
            await run_sync(self._services.profiles.save_text, text)
        except ApiError as exc:
            detail = exc.message.removeprefix("BadRequest: ")
            raise ServiceError(f"Invalid executor profiles format: {detail}") from None
        except ProfileError as exc:
            raise ServiceError(str(exc)) from None
        respond(resp, "Executor profiles saved successfully")


class DevLogin:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="DevicePollStatus")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await run_sync(self._services.user_config.dev_login)
        respond(resp, "SUCCESS")


class NotSupported:
    """Peripheral features this server does not offer yet: a clear soft error (never a crash)."""

    def __init__(self, what: str) -> None:
        self._message = f"{what} is not supported by this server yet."

    @api_operation(data="null")
    async def _answer(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **_: str) -> None:
        resp.media = soft_error(self._message)

    on_get = _answer
    on_post = _answer
    on_delete = _answer


class NeedsInternet:
    """Peripheral routes that need an external service: a clear soft error, never a crash (spec §8)."""

    def __init__(self, what: str, service: str) -> None:
        self._message = _NEEDS_INTERNET.format(what=what, service=service)

    @api_operation(data="null")
    async def _answer(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **_: str) -> None:
        resp.media = soft_error(self._message)

    on_get = _answer
    on_post = _answer


class OpenApi:
    """The OpenAPI document of this server's REST routes."""

    def __init__(self, app: falcon.asgi.App[Any, Any]) -> None:
        self._app = app
        self._document: dict[str, object] | None = None

    @api_operation(data="raw:OpenApiDocument")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if self._document is None:
            self._document = build_document(self._app)
        resp.media = self._document
