"""Routes of the dashboard: pages, sign-in and sign-out, static files."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from ..errors import Forbidden, ServiceError, Unauthorized
from ..model import Principal, Role
from ..services import Services
from .sessions import COOKIE, TTL_S, Session, session_of, sessions_of

router = APIRouter(include_in_schema=False)

STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}


def _ui_dir() -> Path:
    return Path(str(resources.files("stats_service").joinpath("ui")))


@cache
def _page(name: str) -> str:
    return (_ui_dir() / "pages" / name).read_text(encoding="utf-8")


def _plotly_js() -> Path | None:
    try:
        path = Path(str(resources.files("plotly").joinpath("package_data/plotly.min.js")))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _set_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=TTL_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _safe_next(value: str | None) -> str:
    """Only a path of the dashboard: never another site."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


def _page_html(request: Request, name: str) -> str:
    """The page with the shared header and the API's base URL (STATS_PUBLIC_URL; empty:
    this origin)."""
    base = (_services(request).settings.public_url or "").rstrip("/")
    page = _page(name).replace("{{header}}", _page("_header.html").rstrip("\n"))
    return page.replace("{{api_base}}", html.escape(base, quote=True))


def _page_response(request: Request, name: str, role: Role = Role.READ) -> Response:
    """A page for a caller with a session; one is opened without sign-in when the tenant
    allows anonymous reads; else the sign-in form. A page that needs a higher role than
    the session's answers 403 with a page that says so."""
    session = session_of(request)
    if session is not None:
        if role is not Role.READ:
            principal = _session_principal(request, session)
            if principal is None:
                return RedirectResponse("/ui/login?next=" + quote(request.url.path), 303)
            if not principal.may(role):
                return _forbidden_page(request, role)
        return HTMLResponse(_page_html(request, name), headers=NO_STORE)
    if role is not Role.READ:
        target = "/ui/login?next=" + quote(request.url.path)
        return RedirectResponse(target, status_code=303)
    anonymous = _services(request).auth.anonymous(None, Role.READ)
    if anonymous is None:
        target = "/ui/login?next=" + quote(request.url.path)
        return RedirectResponse(target, status_code=303)
    session = sessions_of(request).create(principal=anonymous)
    response = HTMLResponse(_page_html(request, name), headers=NO_STORE)
    _set_cookie(request, response, session)
    return response


def _session_principal(request: Request, session: Session) -> Principal | None:
    """Who a session acts as; None (and the session dropped) when its key was revoked."""
    if session.principal is not None:
        return session.principal
    try:
        return _services(request).auth.authenticate(session.key)
    except ServiceError:
        sessions_of(request).drop(session.id)
        return None


def _forbidden_page(request: Request, role: Role) -> Response:
    body = _page_html(request, "forbidden.html").replace("{{role}}", html.escape(role.value))
    return HTMLResponse(body, status_code=403, headers=NO_STORE)


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
async def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def overview(request: Request) -> Response:
    return _page_response(request, "overview.html")


@router.get("/ui/devices/{name:path}")
async def device_page(request: Request, name: str) -> Response:
    return _page_response(request, "device.html")


@router.get("/ui/explore")
async def explorer_page(request: Request) -> Response:
    return _page_response(request, "explorer.html")


@router.get("/ui/runs")
async def runs_page(request: Request) -> Response:
    return _page_response(request, "runs.html")


@router.get("/ui/runs/compare")
async def compare_page(request: Request) -> Response:
    return _page_response(request, "compare.html")


@router.get("/ui/runs/{run:path}")
async def run_page(request: Request, run: str) -> Response:
    return _page_response(request, "run.html")


@router.get("/ui/admin")
async def admin_page(request: Request) -> Response:
    return _page_response(request, "admin.html", Role.ADMIN)


def _login_form(message: str = "", next_path: str = "/ui/", status: int = 200) -> Response:
    error = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    body = _page("login.html").replace("{{error}}", error)
    body = body.replace("{{next}}", html.escape(next_path, quote=True))
    return HTMLResponse(body, status_code=status, headers=NO_STORE)


@router.get("/ui/login")
async def login_form(request: Request) -> Response:
    return _login_form(next_path=_safe_next(request.query_params.get("next")))


@router.post("/ui/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    next_path = _safe_next(form.get("next"))
    key = (form.get("key") or "").strip()
    if not key:
        return _login_form("Enter an API key.", next_path, 400)
    auth = _services(request).auth
    try:
        principal = auth.authenticate(key)
        auth.require(principal, Role.READ)
    except (Unauthorized, Forbidden) as exc:
        return _login_form(f"Sign-in refused: {exc}", next_path, 401)
    store = sessions_of(request)
    store.drop(request.cookies.get(COOKIE))
    session = store.create(key=key)
    response = RedirectResponse(next_path, status_code=303)
    _set_cookie(request, response, session)
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    session = session_of(request)
    if session is not None:
        form = await _form(request)
        presented = request.headers.get("x-csrf-token") or form.get("csrf")
        if not session.csrf_ok(presented):
            raise Forbidden("sign-out needs the session's CSRF token")
        sessions_of(request).drop(session.id)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/ui/session")
async def session_info(request: Request) -> Response:
    """Who the page is signed in as, and the CSRF token its scripts send."""
    session = session_of(request)
    if session is None:
        raise Unauthorized("not signed in: open /ui/login")
    principal = session.principal
    if principal is None:
        try:
            principal = _services(request).auth.authenticate(session.key)
        except ServiceError:
            sessions_of(request).drop(session.id)
            raise
    body: dict[str, Any] = {
        "tenant": principal.tenant,
        "role": principal.role.value,
        "anonymous": session.principal is not None,
        "csrf": session.csrf,
        "mqtt": _mqtt_broker(_services(request)),
    }
    return JSONResponse(body, headers=NO_STORE)


def _mqtt_broker(services: Services) -> str | None:
    """The broker of STATS_MQTT_URL without its credentials, for the pages' examples;
    "configured" when brokers come from a file; None when MQTT is off."""
    settings = services.settings
    if settings.mqtt_config is not None:
        return "configured"
    if settings.mqtt_url is None:
        return None
    parts = urlsplit(settings.mqtt_url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    headers = {"Cache-Control": "public, max-age=3600"}
    if name == "plotly.min.js":
        path = _plotly_js()
        if path is None:
            return Response("plotly is not installed", status_code=404)
        return FileResponse(path, media_type=STATIC_TYPES[".js"], headers=headers)
    path = _ui_dir() / "static" / name
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, media_type=kind, headers=headers)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parsed.items() if v}
