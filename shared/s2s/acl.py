"""Redis ACL users, one per role, for a Redis that services on several hosts share.

    python -m s2s.acl api=<password> stt=<password> llm=<password> tts=<password> webhook=<password>

prints the users file (`aclfile` in redis.conf): the default user off, and each role with its own
password, only the commands the service runs and only its keys and channels. Each service then
connects as its role: `REDIS_URL=rediss://stt:<password>@redis.internal:6380/0?ssl_ca_certs=...`.

What every role lacks: the administrative and dangerous commands (FLUSHALL, CONFIG, SHUTDOWN,
DEBUG, KEYS, MONITOR, ACL, REPLICAOF, MIGRATE, ...), so a leaked worker password cannot wipe or
reconfigure the server. What the roles may touch: the API and the stage workers share the job
records (`s2s:*`) and RQ's queues and registries (`rq:*`), which every one of them reads and
writes; the webhook worker only the job records and its outbox.
"""

from __future__ import annotations

import sys
from typing import Final

#: Commands every role has: the data types the services use, Lua scripts, pub/sub, transactions,
#: then nothing dangerous, except what RQ and the health checks need of the server: INFO (the
#: Redis version, memory use) and naming a connection.
COMMANDS: Final = (
    "-@all +@read +@write +@keyspace +@string +@list +@hash +@set +@sortedset +@stream "
    "+@pubsub +@scripting +@transaction +@connection -@dangerous "
    "+info +client|setname +client|getname +client|id +client|info -script|flush -function"
)

#: Keys (~) and channels (&) of each role.
ROLES: Final[dict[str, str]] = {
    "api": "~s2s:* ~rq:* &s2s:* &rq:*",
    "stt": "~s2s:* ~rq:* &s2s:* &rq:*",
    "llm": "~s2s:* ~rq:* &s2s:* &rq:*",
    "tts": "~s2s:* ~rq:* &s2s:* &rq:*",
    "webhook": "~s2s:job:* ~s2s:webhooks ~s2s:webhook-workers:*",
}


def users(passwords: dict[str, str]) -> str:
    """The ACL file: the default user off, then one line per role given a password."""
    lines = ["user default off"]
    for role, password in passwords.items():
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if not password or any(c.isspace() for c in password):
            raise ValueError(f"the password of {role!r} must be non-empty, without spaces")
        lines.append(f"user {role} on >{password} resetkeys resetchannels {ROLES[role]} {COMMANDS}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        passwords = dict(arg.split("=", 1) for arg in args)
        print(users(passwords), end="")
    except ValueError as exc:
        print(f"s2s.acl: {exc}; usage: python -m s2s.acl api=PASSWORD stt=PASSWORD ...", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
