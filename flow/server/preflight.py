"""What ``flow server start`` checks before it listens.

A server that cannot work should say so in one line and exit 2, not print "listening on"
and then a traceback. :func:`require_server_extra` checks that the server's packages are
installed; :func:`check` checks a cluster server's configuration (``mode`` other than
standalone): its party id, route table and key, its brokers' settings, that the brokers
are reached over TLS (unless ``federation.allow_insecure_transport`` is true), and that
its API token is at least as strong as a generated one (32 random bytes).
"""

from __future__ import annotations

import string
from typing import Any

from flow.core.errors import ConfigError, ValidationError
from flow.core.settings import ServiceConf

SERVER_EXTRA = "pip install 'fedweave[server]'"
#: random bytes in a generated token (``secrets.token_urlsafe(32)``: 43 characters)
TOKEN_BYTES = 32
#: a random token of the length asked for has far more distinct characters than this
MIN_DISTINCT = 10
_HEX = frozenset(string.hexdigits)
_ALLOW = "federation.allow_insecure_transport"


def require_server_extra() -> None:
    """ConfigError naming the install command unless the server's packages import."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ConfigError(f"flow server start needs the server extra ({exc.name} is not installed): "
                          f"{SERVER_EXTRA}") from None


_GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def token_problem(token: str, where: str,
                  fix: str = f"set a random one ({_GENERATE}), or leave it empty for a generated token file",
                  ) -> str | None:
    """Why ``token`` is weaker than 32 random bytes, as one line naming ``where``; None if it is not."""
    hexadecimal = all(c in _HEX for c in token)
    need = TOKEN_BYTES * 2 if hexadecimal else -(-TOKEN_BYTES * 4 // 3)  # 64 hex digits, 43 url-safe characters
    kind = "hex digits" if hexadecimal else "characters"
    if len(token) < need:
        return (f"{where}: the API token has {len(token)} {kind}, fewer than 32 random bytes ({need} {kind}): "
                f"{fix}")
    if len(set(token)) < MIN_DISTINCT:
        return f"{where}: the API token repeats {len(set(token))} characters, it is not random: {fix}"
    return None


def check(conf: ServiceConf) -> None:
    """ValidationError (exit 2), one line per problem, unless a server of ``conf`` can start."""
    problems = cluster_problems(conf) if conf.mode != "standalone" else []
    if problems:
        raise ValidationError(problems)


def cluster_problems(conf: ServiceConf) -> list[str]:
    from federation.auth import KeyStore, RouteTable

    source = conf.source or "service conf"
    problems: list[str] = []
    party_id = str(conf.server.party_id or "")
    if not party_id:
        problems.append(f"{source}: server.party_id is required when mode is '{conf.mode}' "
                        "(set it to this party's id: the control plane speaks for it)")
    else:
        try:
            keys = KeyStore(conf.home_path)
            if keys.path(party_id).exists():  # else it is created on first use
                keys.load(party_id)
        except ConfigError as exc:
            problems.append(f"{exc} (fix or remove it: a new key must then go into every peer's route table)")
    table = None
    try:
        table = RouteTable.load(conf.route_table_path)
    except ConfigError as exc:
        problems.append(f"{source}: route_table: {exc} (write the route table, with every party's public key, "
                        "there or set route_table to its path)")
    problems += _broker_problems(conf, source, party_id, table)
    token = _token_problem(conf, source)
    if token:
        problems.append(token)
    return problems


def _broker_problems(conf: ServiceConf, source: str, party_id: str, table: Any) -> list[str]:
    """The settings of every broker transport this server may use: the default engine's and
    any other with settings in the conf."""
    fed = conf.federation
    engines = {conf.default_engines.federation} | {n for n in ("rabbitmq", "pulsar") if getattr(fed, n)}
    peers = {pid: route for pid, route in (table.parties.items() if table else ()) if pid != party_id}
    problems: list[str] = []
    insecure: list[str] = []
    try:
        if "rabbitmq" in engines:
            try:
                from federation._rabbitmq_conf import RabbitMQConf
            except ModuleNotFoundError as exc:
                raise ConfigError(f"federation.rabbitmq needs the rabbitmq extra ({exc.name} is not installed): "
                                  "pip install 'fedweave[rabbitmq]'") from None
            rabbit = RabbitMQConf.parse(fed.rabbitmq)
            insecure += rabbit.plaintext({p: (r.model_extra or {}).get("rabbitmq") for p, r in peers.items()})
        if "pulsar" in engines:
            from federation._pulsar_conf import PulsarSettings, import_pulsar

            settings = PulsarSettings.load(fed.pulsar)
            import_pulsar()
            settings.auth_token()  # a token_file that cannot be read
            insecure += settings.plaintext({p: getattr(r, "pulsar", None) for p, r in peers.items()})
    except ConfigError as exc:
        problems.append(f"{source}: {exc}")
    if not fed.allow_insecure_transport:
        problems += [f"{source}: {item}; a server in mode '{conf.mode}' refuses it unless {_ALLOW} is true"
                     for item in insecure]
    return problems


def _token_problem(conf: ServiceConf, source: str) -> str | None:
    """The API token the server would use, unless a strong one will be generated."""
    from flow.server.auth import read_token, token_path

    if conf.server.token:
        return token_problem(conf.server.token, f"{source}: server.token")
    try:
        token = read_token(conf)
    except ConfigError as exc:
        return f"{exc} (delete it: a random token is written on start)"
    fix = f"write a random one into it ({_GENERATE}), or delete it: a random token is written on start"
    return token_problem(token, str(token_path(conf)), fix) if token else None
