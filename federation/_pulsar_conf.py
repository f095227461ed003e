"""Pulsar settings: this party's cluster, namespace, authentication and client limits
(``federation.pulsar`` in service_conf.yaml, conf/pulsar.md) and a peer's route-table
``pulsar`` entry. The transport itself is :mod:`federation.pulsar`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from federation._mq import load_settings
from federation.envelope import HEADER_RESERVE
from flow.core.errors import ConfigError

#: bytes of a broker's max message size kept for Pulsar's own message and batch metadata
PULSAR_OVERHEAD = 10 * 1024
TLS_SCHEME = "pulsar+ssl://"
_NAME_RE = re.compile(r"[A-Za-z0-9_=-][A-Za-z0-9_=.-]{0,127}")


def _check_url(v: str) -> str:
    scheme, sep, rest = v.partition("://")
    if scheme not in ("pulsar", "pulsar+ssl") or not sep or not rest.strip("/"):
        raise ValueError(f"'{v}' is not a Pulsar service URL: use pulsar://host:6650 or pulsar+ssl://host:6651")
    return v


def _check_name(v: str) -> str:
    if not _NAME_RE.fullmatch(v):
        raise ValueError(f"'{v}' is not a valid Pulsar name: use letters, digits, '_', '-', '=', '.'")
    return v


ServiceUrl = Annotated[str, AfterValidator(_check_url)]
Name = Annotated[str, AfterValidator(_check_name)]


#: client errors a retry cannot fix; everything else (time-outs, lost connections) is retried
FATAL = frozenset(
    "AuthenticationError AuthorizationError ErrorGettingAuthenticationData InvalidTopicName InvalidUrl "
    "InvalidConfiguration TopicNotFound TopicTerminated NotAllowedError OperationNotSupported MessageTooBig "
    "IncompatibleSchema AlreadyClosed ProducerFenced ProducerBlockedQuotaExceededError UnsupportedVersionError".split()
)
#: what to check, by client error
HINTS = {
    "TopicNotFound": " (does the tenant/namespace exist, or is topic auto-creation off?)",
    "MessageTooBig": " (set federation.pulsar.max_message_size to the broker's maxMessageSize)",
    "AuthenticationError": " (check federation.pulsar.token / token_file)",
    "AuthorizationError": " (grant this party's role produce and consume on the namespace)",
}


class PulsarSettings(BaseModel):
    """``federation.pulsar`` in service_conf.yaml: this party's cluster, where its inbox
    topics live, how to authenticate, and client limits (see conf/pulsar.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_url: ServiceUrl = "pulsar://127.0.0.1:6650"
    tenant: Name = "public"
    namespace: Name = "default"
    topic_prefix: Name = "fedweave"
    #: JWT for Pulsar token authentication; or token_file, a file holding it
    token: SecretStr | None = None
    token_file: str | None = None
    #: pulsar+ssl: CA bundle (default: certifi's), hostname check, client cert for mTLS
    tls_trust_certs_file_path: str | None = None
    tls_validate_hostname: bool = True
    tls_allow_insecure_connection: bool = False
    tls_certificate_file_path: str | None = None
    tls_private_key_file_path: str | None = None
    operation_timeout_s: int = Field(30, ge=1)
    connection_timeout_s: float = Field(10, gt=0)
    send_timeout_s: float = Field(30, gt=0)
    #: how long publishing and subscribing keep retrying through a broker outage
    reconnect_timeout_s: float = Field(300, gt=0)
    #: the broker's maxMessageSize; messages are cut below it
    max_message_size: int = Field(5 * 1024 * 1024, ge=2 * HEADER_RESERVE + PULSAR_OVERHEAD)
    #: 0 turns batching of small messages off
    batching_max_publish_delay_ms: int = Field(5, ge=0)
    #: messages a consumer prefetches. Small by default: pulsar-lite dispatches at most 20
    #: entries per round and starts the next round only on a flow request, which the
    #: client sends after receiver_queue_size/2 messages; raise it for Apache Pulsar
    receiver_queue_size: int = Field(2, ge=1)
    #: a consumer that delivers nothing for this long while this party waits on its
    #: channel is replaced (the broker then re-sends what is unacknowledged); the wait
    #: doubles after each replacement that brings nothing, up to 8 times this
    stall_resubscribe_s: float = Field(15, gt=0)
    #: the C++ client logs to stderr (a Python logger can abort the process when the
    #: client closes: apache/pulsar-client-python#256)
    client_log_level: Literal["debug", "info", "warn", "error"] = "warn"

    @model_validator(mode="after")
    def _pairs(self) -> "PulsarSettings":
        if self.token is not None and self.token_file is not None:
            raise ValueError("set token or token_file, not both")
        if (self.tls_certificate_file_path is None) != (self.tls_private_key_file_path is None):
            raise ValueError("tls_certificate_file_path and tls_private_key_file_path go together")
        return self

    @classmethod
    def load(cls, data: Mapping[str, Any] | PulsarSettings | None, where: str = "federation.pulsar") -> PulsarSettings:
        """Validated settings; ConfigError names the bad key."""
        return load_settings(cls, data, where)

    def plaintext(self, routes: Mapping[str, Any] | None = None, where: str = "federation.pulsar") -> list[str]:
        """The clusters this party would reach without verified TLS, one line each (where,
        why, fix): its own ``service_url`` and each peer's route-table ``pulsar.url`` in
        ``routes`` ({party_id: entry})."""
        out = [] if self.service_url.startswith(TLS_SCHEME) else [
            f"{where}.service_url: {self.service_url} has no TLS (use {TLS_SCHEME}host:6651)"]
        if self.tls_allow_insecure_connection:
            out.append(f"{where}.tls_allow_insecure_connection: true accepts any broker certificate (set it false)")
        for pid, entry in (routes or {}).items():
            try:
                url = PeerRoute.model_validate(entry or {}).url
            except ValidationError as exc:
                raise ConfigError(f"route table: parties.{pid}.pulsar: {exc.errors()[0]['msg']}") from None
            if url and not url.startswith(TLS_SCHEME):
                out.append(f"route table: parties.{pid}.pulsar.url: {url} has no TLS (use {TLS_SCHEME}host:6651)")
        return out

    def auth_token(self) -> str | None:
        if self.token is not None or self.token_file is None:
            return self.token and self.token.get_secret_value()
        try:
            token = Path(self.token_file).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigError(f"federation.pulsar.token_file: cannot read {self.token_file}: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"federation.pulsar.token_file: {self.token_file} is empty")
        return token


class PeerRoute(BaseModel):
    """A party's ``pulsar`` entry in the route table: where its inbox topics live when it
    uses another cluster, tenant or namespace than this party (other fields are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    url: ServiceUrl | None = None
    tenant: Name | None = None
    namespace: Name | None = None


def import_pulsar() -> Any:
    try:
        import pulsar
    except ImportError:
        raise ConfigError("the Pulsar transport needs the pulsar-client package (pip install pulsar-client)") from None
    return pulsar
