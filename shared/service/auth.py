"""API tokens: random secrets shown once, stored only as sha256."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import ApiToken, utcnow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, owner: str) -> str:
    """A new token for owner; the only time the plain token exists."""
    if not owner or not owner.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError("owner must be letters, digits, '-', '_' or '.'")
    token = "fs_" + secrets.token_urlsafe(32)
    session.add(ApiToken(owner=owner, token_sha256=hash_token(token)))
    session.commit()
    return token


def kept_token(session: Session, path: Path, owner: str) -> str:
    """The token kept in `path` while it is live for `owner`; else a new one, written there
    (readable by this user only). The database holds only its hash, as for every token."""
    path = Path(path)
    if path.is_file():
        kept = path.read_text().strip()
        if kept and owner_for(session, kept) == owner:
            return kept
    token = create_token(session, owner)
    write_private(path, token)
    return token


def write_private(path: Path, secret: str) -> None:
    """Write a secret to `path`, readable by this user only, replacing the file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(secret + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def owner_for(session: Session, token: str) -> str | None:
    """The owner of a live (unrevoked) token, else None."""
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_sha256 == hash_token(token))
    ).one_or_none()
    return row.owner if row is not None and row.revoked_at is None else None


def revoke(session: Session, token: str) -> bool:
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_sha256 == hash_token(token))
    ).one_or_none()
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    session.commit()
    return True
