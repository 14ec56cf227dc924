"""The web console: server-rendered pages under /console for operators.

`router(state)` returns the routes; `create_app` includes them. Pages read through the engine's
public queries; actions call `send`, `cancel`, `retry`, `rewind` and `migrate` with the logged-in key's name
as actor. Every request is authenticated here, in
`Console.guard`, and every POST checks the session's CSRF token (statemachines.web.console_session).

Status codes: a page without a session redirects to the login form (303); a forged, expired or
revoked session is 401, and so is a POST without one; a key lacking the scope is 403, and so is
a form whose CSRF token is missing or wrong; engine errors map as the API maps them (404, 409,
422, 503), the page shown again with the error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from statemachines import errors
from statemachines.web.auth import is_loopback
from statemachines.web.console_pages import FORM_ACTIONS, Pages
from statemachines.web.console_session import (
    COOKIE,
    LOCAL,
    LOGIN_COOKIE,
    LOGIN_TTL,
    Forged,
    Session,
    Sessions,
)
from statemachines.web.console_views import SECURITY_HEADERS, Views

PREFIX = "/console"

#: Engine errors -> HTTP status, most specific first (the API uses the same statuses).
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (errors.InstanceNotFound, 404),
    (errors.UnknownMachine, 404),  # VersionNotRegistered too: migrate to an unknown version
    (errors.EventRejected, 409),
    (errors.InstanceClosed, 409),  # rewind of a closed instance without "reopen"
    (errors.InstanceExists, 409),
    (errors.RewindLimit, 409),
    (errors.IdempotencyKeyReused, 409),
    (errors.MigrationError, 422),
    (errors.DefinitionError, 422),
    (errors.TimeOutOfRange, 422),
    (errors.PayloadInvalid, 422),
    (errors.ContextInvalid, 422),
    (errors.InvalidArgument, 422),
    (errors.ActionFailed, 422),
    (errors.StorageUnavailable, 503),
    (errors.StateMachineError, 400),
)
NOTICES = {"events": "Event applied.", "cancel": "Instance cancelled.", "retry": "Instance retried."}
NOTICES.update({a.name: f"{a.label} done." for a in FORM_ACTIONS})


#: The scope each action needs: the same as the API's route for it.
SCOPE_OF = {"events": "write", "cancel": "write", "retry": "admin"}
SCOPE_OF.update({a.name: a.scope for a in FORM_ACTIONS})


def status_of(exc: Exception) -> int:
    return next(code for kind, code in ERROR_STATUS if isinstance(exc, kind))


@dataclass
class Guarded:
    """The outcome of authenticating one request: a session, or the response refusing it; and a
    session cookie to set when one was made on the spot (the loopback rule)."""

    session: Session | None
    denied: Response | None = None
    new_cookie: str | None = None


class Console:
    """The console's handlers on one service state (engine, keys, session secret)."""

    def __init__(self, state: Any, prefix: str = PREFIX) -> None:
        self.engine = state.engine
        self.prefix = prefix
        self.sessions = Sessions(state.session_secret, state.keys)
        self.views = Views(prefix)
        self.pages = Pages(self.engine)

    # authentication ------------------------------------------------------------------------------
    def guard(self, request: Request, need: str, *, page: bool) -> Guarded:
        """Who is asking, and may they do what needs scope `need`? `page`: a GET of a page,
        which sends a person without a session to the login form instead of a 401."""
        loopback = is_loopback(request.client.host if request.client else None)
        try:
            session = self.sessions.read(request.cookies.get(COOKIE), loopback)
        except Forged as exc:
            response = self.views.message(
                request, 401, "Not logged in", f"{exc}. Log in again.", login_link=True
            )
            response.delete_cookie(COOKIE, path="/")
            return Guarded(None, response)
        new_cookie = None
        if session is None and page and self.sessions.local_allowed(loopback):
            new_cookie = self.sessions.issue(LOCAL)
            session = self.sessions.read(new_cookie, loopback)
        if session is None:
            if page:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return Guarded(None, self.redirect(request, "/login?" + urlencode({"next": target})))
            return Guarded(
                None, self.views.message(request, 401, "Not logged in", "Log in first.", login_link=True)
            )
        if not session.can(need):
            text = f"The key {session.name!r} lacks the {need!r} scope this needs."
            return Guarded(session, self.views.message(request, 403, "Not allowed", text, session=session))
        return Guarded(session, None, new_cookie)

    async def guard_form(self, request: Request, need: str) -> tuple[Guarded, dict[str, Any]]:
        """`guard` for a POSTed form, plus its CSRF check (403 when missing or wrong)."""
        form = dict(await request.form())
        guarded = await run_in_threadpool(self.guard, request, need, page=False)
        if (
            guarded.denied is None
            and guarded.session is not None
            and not self.sessions.check_csrf(guarded.session, form.get("csrf"))
        ):
            text = "The form's CSRF token is missing or wrong: reload the page and try again."
            refused = self.views.message(request, 403, "Refused", text, session=guarded.session)
            guarded = Guarded(guarded.session, refused)
        return guarded, form

    def finish(self, request: Request, guarded: Guarded, response: Response) -> Response:
        """`response`, with the session cookie made for this request if one was."""
        if guarded.new_cookie is not None:
            self.set_session(request, response, guarded.new_cookie)
        return response

    def set_session(self, request: Request, response: Response, value: str) -> None:
        """The session cookie: HttpOnly, SameSite=Strict, and Secure when served over HTTPS."""
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.sessions.ttl,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def redirect(self, request: Request, path: str) -> RedirectResponse:
        return RedirectResponse(
            self.views.base(request) + path, status_code=303, headers={"Cache-Control": "no-store"}
        )

    # login ---------------------------------------------------------------------------------------
    def login_form(
        self, request: Request, next_url: str, status_code: int = 200, error: str | None = None
    ) -> Response:
        cookie, token = self.sessions.login_nonce()
        response = self.views.page(
            request,
            "login.html",
            status_code,
            login_csrf=token,
            next=next_url,
            error=error,
            no_keys=not self.sessions.keys.any(),
        )
        response.set_cookie(
            LOGIN_COOKIE,
            cookie,
            max_age=LOGIN_TTL,
            path=self.views.base(request),
            httponly=True,
            samesite="strict",
        )
        return response

    def safe_next(self, request: Request, value: Any) -> str:
        """Only a path of this console: never an absolute URL or `//host` (no open redirect)."""
        base = self.views.base(request)
        if (
            isinstance(value, str)
            and value.startswith(base + "/")
            and not value.startswith("//")
            and not any(c in value for c in "\\\r\n")
        ):
            return value
        return base + "/machines"

    async def login(self, request: Request) -> Response:
        form = dict(await request.form())
        return await run_in_threadpool(self._login, request, form)  # reads the key table

    def _login(self, request: Request, form: dict[str, Any]) -> Response:
        next_url = self.safe_next(request, form.get("next"))
        if not self.sessions.check_login_csrf(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
            return self.login_form(
                request, next_url, 403, "The login form expired or was not ours: try again."
            )
        secret = form.get("key")
        key = (
            self.sessions.keys.verify(secret.strip()) if isinstance(secret, str) and secret.strip() else None
        )
        if key is None:
            return self.login_form(request, next_url, 401, "That key is not valid.")
        response = RedirectResponse(next_url, status_code=303)
        self.set_session(request, response, self.sessions.issue(str(key.id)))
        response.delete_cookie(LOGIN_COOKIE, path=self.views.base(request))
        return response

    # instance actions ----------------------------------------------------------------------------
    async def act(self, request: Request, instance_id: str, action: str) -> Response:
        guarded, form = await self.guard_form(request, SCOPE_OF[action])
        if guarded.denied is not None:
            return guarded.denied
        session = guarded.session
        assert session is not None
        try:
            await run_in_threadpool(self.apply, action, instance_id, form, session)
        except errors.StateMachineError as exc:
            return await run_in_threadpool(
                self.instance_page, request, instance_id, session, status_of(exc), error=str(exc)
            )
        except _BadForm as exc:
            return await run_in_threadpool(
                self.instance_page, request, instance_id, session, exc.status, error=str(exc)
            )
        return self.redirect(request, f"/instances/{quote(instance_id, safe='')}?done={action}")

    def apply(self, action: str, instance_id: str, form: dict[str, Any], session: Session) -> None:
        engine, actor = self.engine, session.actor
        if action == "events":
            engine.send(instance_id, _text(form, "event") or "", _payload(form), actor=actor)
        elif action == "cancel":
            engine.cancel(instance_id, _text(form, "reason"), actor=actor)
        elif action == "retry":
            engine.retry(instance_id, actor=actor)
        elif action == "rewind":
            to = _text(form, "to")
            if to is None:
                raise _BadForm("rewind needs where to go back to: a history seq or a state name")
            target: int | str = int(to) if to.isdigit() else to
            reopen = _text(form, "reopen") is not None  # a checked checkbox sends its value
            engine.rewind(instance_id, target, actor=actor, reason=_text(form, "reason"), reopen=reopen)
        elif action == "migrate":
            report = engine.migrate(
                [instance_id], to_version=_text(form, "version"), actor=actor, reason=_text(form, "reason")
            )
            if not report.migrated:
                why = "; ".join(str(s.reason) for s in report.skipped) or "nothing to do"
                raise _BadForm(f"not migrated: {why}", 409)

    def instance_page(
        self, request: Request, instance_id: str, session: Session, status_code: int = 200, **extra: Any
    ) -> Response:
        try:
            data = self.pages.instance(instance_id)
        except errors.StateMachineError as exc:
            return self.views.message(request, status_of(exc), "Instance", str(exc), session=session)
        data["can_write"] = session.can("write")
        return self.views.page(request, "instance.html", status_code, session=session, **data, **extra)


class _BadForm(Exception):
    """A form the console itself refuses (not an engine error): 422, or `status`."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _text(form: dict[str, Any], name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _payload(form: dict[str, Any]) -> Any:
    text = _text(form, "payload")
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _BadForm(f"the payload is not valid JSON: {exc}") from None


def router(state: Any, prefix: str = PREFIX) -> APIRouter:
    """The console's routes, to include in the service's app (hidden from the OpenAPI schema)."""
    console = Console(state, prefix)
    views = console.views
    r = APIRouter(prefix=prefix, include_in_schema=False)

    @r.get("")
    @r.get("/")
    def home(request: Request) -> Response:
        return console.redirect(request, "/machines")

    @r.get("/static/{name}")
    def static(name: str) -> Response:
        return views.static(name)

    @r.get("/login")
    def login_page(request: Request, next: str = "") -> Response:
        if console.sessions.local_allowed(is_loopback(request.client.host if request.client else None)):
            return console.redirect(request, "/machines")  # the loopback rule: no login needed
        return console.login_form(request, console.safe_next(request, next))

    @r.post("/login")
    async def login(request: Request) -> Response:
        return await console.login(request)

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        guarded, _ = await console.guard_form(request, "read")
        if guarded.denied is not None:
            return guarded.denied
        response = console.redirect(request, "/login")
        response.delete_cookie(COOKIE, path="/")
        return response

    @r.get("/machines")
    def machines(request: Request) -> Response:
        guarded = console.guard(request, "read", page=True)
        if guarded.denied is not None:
            return guarded.denied
        try:
            data = console.pages.machines(views.base(request) + "/instances")
        except errors.StateMachineError as exc:
            return views.message(request, status_of(exc), "Machines", str(exc), session=guarded.session)
        return console.finish(
            request, guarded, views.page(request, "machines.html", session=guarded.session, **data)
        )

    @r.get("/instances")
    def instances(request: Request) -> Response:
        guarded = console.guard(request, "read", page=True)
        if guarded.denied is not None:
            return guarded.denied
        try:
            data = console.pages.instances(request.query_params)
        except errors.StateMachineError as exc:
            return views.message(request, status_of(exc), "Instances", str(exc), session=guarded.session)
        return console.finish(
            request, guarded, views.page(request, "instances.html", session=guarded.session, **data)
        )

    @r.get("/instances/{instance_id}")
    def instance(request: Request, instance_id: str, done: str = "") -> Response:
        guarded = console.guard(request, "read", page=True)
        if guarded.denied is not None or guarded.session is None:
            return guarded.denied or Response(status_code=401)
        page = console.instance_page(request, instance_id, guarded.session, notice=NOTICES.get(done))
        return console.finish(request, guarded, page)

    @r.get("/instances/{instance_id}/fingerprint")
    def fingerprint(request: Request, instance_id: str) -> Response:
        """What the instance page polls (every second) to reload itself when something changed."""
        guarded = console.guard(request, "read", page=False)
        if guarded.denied is not None:
            return JSONResponse({"error": "not logged in"}, status_code=guarded.denied.status_code)
        found = console.pages.queries.fingerprint(instance_id)
        if found is None:
            return JSONResponse({"error": "no such instance"}, status_code=404, headers=SECURITY_HEADERS)
        return JSONResponse({"fingerprint": found}, headers=SECURITY_HEADERS)

    @r.post("/instances/{instance_id}/{action}")
    async def act(request: Request, instance_id: str, action: str) -> Response:
        if action not in SCOPE_OF:
            return views.message(request, 404, "Not found", f"There is no action {action!r}.")
        return await console.act(request, instance_id, action)

    return r
