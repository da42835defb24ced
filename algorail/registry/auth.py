"""API keys: random secrets shown once, stored only as a sha256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from algorail import naming
from algorail.errors import AlgorailError
from algorail.registry.models import ApiKey, too_long

KEY_PREFIX = "ark_"


@dataclass(frozen=True)
class Principal:
    """Who a request acts for."""

    owner: str
    admin: bool = False


class AuthError(AlgorailError):
    """A missing or unknown API key."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, owner: str, admin: bool = False, label: str | None = None) -> str:
    """Store a new key for `owner` and return the secret (it is not stored)."""
    if not naming.is_valid_name(owner):
        raise AlgorailError(f"owner {owner!r} is not a valid name: {naming.NAME_RULE}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(key_hash=hash_key(key), prefix=key[:12], owner=owner, admin=admin, label=label)
    problem = too_long(row)
    if problem:
        raise AlgorailError(f"the key's {problem}")
    session.add(row)
    session.commit()
    return key


def list_keys(session: Session) -> list[dict]:
    rows = session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
    return [{"prefix": k.prefix, "owner": k.owner, "admin": k.admin, "label": k.label,
             "createdAt": k.created_at.isoformat()} for k in rows]


def revoke_key(session: Session, prefix: str) -> dict:
    """Delete the key whose listed prefix is `prefix`; requests with it fail at once."""
    rows = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).all()
    if len(rows) != 1:
        found = "no key" if not rows else f"{len(rows)} keys"
        raise AlgorailError(f"{found} with prefix {prefix!r}; `algorail registry keys list` "
                            "shows each key's prefix")
    row = rows[0]
    session.delete(row)
    session.commit()
    return {"prefix": row.prefix, "owner": row.owner, "admin": row.admin, "label": row.label}


def principal_for(session: Session, key: str | None) -> Principal:
    if not key:
        raise AuthError("no API key: send `Authorization: Bearer KEY` (or set ALGORAIL_API_KEY)")
    row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
    if row is None:
        raise AuthError("unknown API key: create one with `algorail registry keys create`")
    return Principal(owner=row.owner, admin=row.admin)
