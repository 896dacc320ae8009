"""Signal ids: how the emit facade makes them, and the rule that keeps one team from taking another's.

Signals are de-duplicated by id across teams. A keyed signal's id is derived from its team and its
idempotency key (a version 5 UUID), so anyone who knows a team's keys can compute its future ids; an
unkeyed one's is random (version 4). A record written to one team's inbox folder by another route
(a direct bucket write) may carry an id of its own choosing, but never a version 5 UUID other than
its own team's derivation: otherwise it could claim another team's future ids first, and that
team's signals would be rejected as duplicates. Ids of other forms stay free for such writers
(they choose them, and must keep them unguessable where teams do not trust one another).
Standard library only: the emit facade imports it.
"""

from __future__ import annotations

import uuid

# Fixed forever: ids derived from idempotency keys must not change between releases.
SIGNAL_ID_NAMESPACE = uuid.UUID("6f0c2a4e-5b7d-4c1e-9a3f-2d8b1e7c9f40")


def signal_id_for(team_id: int, idempotency_key: str | None) -> str:
    """Stable for a (team, idempotency key); random without a key. Duplicates are dropped at ingestion."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(SIGNAL_ID_NAMESPACE, f"{team_id}:{idempotency_key}"))


def derived_id_rule(signal_id: str, team_id: int, idempotency_key: str | None) -> str | None:
    """Why `signal_id`, a version 5 UUID in any spelling, is not the id derived from this team and key;
    None for any other id, or for that derivation."""
    try:
        derived = uuid.UUID(signal_id).version == 5
    except ValueError:
        return None
    own = signal_id_for(team_id, idempotency_key) if idempotency_key is not None else None
    if not derived or signal_id == own:
        return None
    return (
        f"a version 5 UUID must be the id derived from team {team_id} and the idempotency_key"
        f" ({own or 'none: there is no idempotency_key'})"
    )
