"""Who may call what. Meilisearch's rules for the master key, plus the admin key.

- No `auth.master_key`: the API is open (as Meilisearch without a master key).
- With it: every route but the open ones needs `Authorization: Bearer <master_key>`;
  a missing header is 401 `missing_authorization_header`, a wrong key 403 `invalid_api_key`.
- `/_miroir/*` (admin routes) need `auth.admin_key` when it is set, given as Bearer or in
  `X-Admin-Key` (else the master key rules apply).
- `/health` and `/_miroir/ready` are always open: load balancers and systemd probe them.

`authorize` is pure so it can be tested without HTTP; `install` hooks it into the app.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from quart import Quart, request

from miroir.config import AuthConfig
from miroir.core.errors import MeiliError

OPEN_PATHS = frozenset({"/health", "/_miroir/ready"})
ADMIN_PREFIX = "/_miroir/"


def missing_authorization() -> MeiliError:
    return MeiliError(
        "missing_authorization_header",
        "The Authorization header is missing. It must use the bearer authorization method.",
    )


def invalid_api_key() -> MeiliError:
    return MeiliError("invalid_api_key", "The provided API key is invalid.")


def admin_key_required() -> MeiliError:
    return MeiliError("miroir_admin_key_required", "This route needs the Miroir admin key.")


def bearer_token(authorization: str | None) -> str | None:
    """The key of a `Bearer <key>` header; anything else counts as missing (as Meilisearch)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def authorize(auth: AuthConfig, path: str, headers: Mapping[str, str]) -> None:
    """Raise the Meilisearch error for this request, or return when it may proceed."""
    if path in OPEN_PATHS:
        return
    token = bearer_token(headers.get("Authorization"))
    if path.startswith(ADMIN_PREFIX) and auth.admin_key is not None:
        candidates = [t for t in (headers.get("X-Admin-Key"), token) if t]
        if not candidates:
            raise missing_authorization()
        if any(_same(t, auth.admin_key) for t in candidates):
            return
        if auth.master_key is not None and any(_same(t, auth.master_key) for t in candidates):
            raise admin_key_required()
        raise invalid_api_key()
    if auth.master_key is None:
        return
    if token is None:
        raise missing_authorization()
    if not _same(token, auth.master_key):
        raise invalid_api_key()


def install(app: Quart, auth: AuthConfig) -> None:
    """Check every request before routing, so unknown routes are not an oracle for keys."""

    @app.before_request
    async def _check_auth() -> None:
        authorize(auth, request.path, request.headers)
