"""Service settings, read from the environment once, at start.

Each setting is a dataclass field that names its variable, its default and what it means, in
one place: loading reads the variables, and README's configuration table is made from the
same declarations (`make docs`; a unit test fails when README differs).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from herald.kafka.config import ClientConfig, consumer_config, producer_config
from herald.kafka.security import DEFAULT_MECHANISM, KafkaSecurity
from herald.kafka.topics import EVENTS_TOPIC
from herald.rpc.limits import ServerLimits
from herald.rpc.server import GrpcServer, ServiceBinding, create_server
from herald.rpc.tls import ServerTls, address
from herald.rpc.tokens import TokenVerifier

T = TypeVar("T")
S = TypeVar("S", bound="ServiceSettings")


def setting(variable: str, default: T, meaning: str, *, at_least: float | None = None) -> T:
    """A field read from `variable` when it is set; a number below `at_least` is raised to it."""
    metadata = {"variable": variable, "meaning": meaning, "at_least": at_least}
    return field(default=default, metadata=metadata)


def server_limit(prefix: str, name: str) -> Any:
    """The setting of ServerLimits' field `name`: variable `<prefix>_<NAME>`, with the field's
    default, meaning and lower bound, so each service declares its limits in one line each."""
    [limit] = [each for each in fields(ServerLimits) if each.name == name]
    return setting(
        f"{prefix}_{name.upper()}",
        limit.default,
        limit.metadata["meaning"],
        at_least=limit.metadata["at_least"],
    )


class Declared(NamedTuple):
    """One setting as declared: its variable, default and meaning."""

    variable: str
    default: Any
    meaning: str


@dataclass(frozen=True)
class ServiceSettings:
    """What every service reads; each service's Settings adds its own."""

    kafka_bootstrap_servers: str = setting(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092", "Kafka brokers to bootstrap from"
    )
    kafka_security_protocol: str = setting(
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "`PLAINTEXT`, `SSL` or `SASL_SSL` (TLS, and SCRAM as the user below)",
    )
    kafka_sasl_mechanism: str = setting(
        "KAFKA_SASL_MECHANISM", DEFAULT_MECHANISM, "`SCRAM-SHA-512` or `SCRAM-SHA-256`"
    )
    kafka_sasl_username: str = setting(
        "KAFKA_SASL_USERNAME", "", "the SCRAM user (the ACLs' `User:` principal) for SASL_SSL"
    )
    kafka_sasl_password_file: str = setting(
        "KAFKA_SASL_PASSWORD_FILE", "", "file holding its password (never the password itself)"
    )
    kafka_ssl_ca_file: str = setting(
        "KAFKA_SSL_CA_FILE", "", "CA of the brokers' certificates (PEM); else the system's"
    )
    events_topic: str = setting("HERALD_EVENTS_TOPIC", EVENTS_TOPIC, "the events topic")
    shutdown_grace_s: float = setting(
        "SHUTDOWN_GRACE_S", 5.0, "how long calls in flight may finish after SIGTERM"
    )
    log_level: str = setting("LOG_LEVEL", "INFO", "Python logging level")
    tls_cert_file: str = setting(
        "HERALD_TLS_CERT_FILE", "", "the gRPC server's certificate chain (PEM); TLS when set"
    )
    tls_key_file: str = setting("HERALD_TLS_KEY_FILE", "", "its private key (PEM)")
    tls_client_ca_file: str = setting(
        "HERALD_TLS_CLIENT_CA_FILE",
        "",
        "CA of the client certificates every caller must present (mTLS) when set",
    )
    jwks_file: str = setting(
        "HERALD_JWKS_FILE", "", "JWKS of the token signers; when set, every RPC needs a token"
    )
    jwt_issuer: str = setting("HERALD_JWT_ISSUER", "herald-dev", "the tokens' required `iss`")
    jwt_audience: str = setting("HERALD_JWT_AUDIENCE", "herald", "the tokens' required `aud`")
    reflection: str = setting(
        "HERALD_REFLECTION", "on", "`off` stops serving gRPC reflection (the API's description)"
    )
    insecure_listen: int = setting(
        "HERALD_INSECURE_LISTEN",
        0,
        "1 allows plaintext gRPC off loopback (TLS terminated in front, by a mesh)",
    )

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str] = os.environ) -> S:
        """The settings, each from its variable when that is set, else its default."""
        types = typing.get_type_hints(cls)
        return cls(
            **{each.name: _read(each, types, env) for each in fields(cls) if _set(each, env)}
        )

    @classmethod
    def value_from_env(cls, name: str, env: Mapping[str, str] = os.environ) -> Any:
        """One setting, read as from_env reads it, without reading (or failing on) the others."""
        [each] = [each for each in fields(cls) if each.name == name]
        return _read(each, typing.get_type_hints(cls), env) if _set(each, env) else each.default

    def grpc_server(
        self, host: str, port: int, services: Sequence[ServiceBinding[Any]]
    ) -> GrpcServer:
        """The service's gRPC server on `host:port`, as these settings say: its limits, TLS,
        tokens and reflection. Raises InsecureListenError (a ValueError) for plaintext off
        loopback, ValueError or OSError for TLS or token files it cannot use."""
        return create_server(
            address=address(host, port),
            services=services,
            limits=self.server_limits(),
            tls=self.server_tls(),
            insecure_listen=bool(self.insecure_listen),
            tokens=self.token_verifier(),
            reflection=self.reflection != "off",
        )

    def server_tls(self) -> ServerTls | None:
        """TLS for the gRPC server, when its certificate and key are set."""
        if not self.tls_cert_file and not self.tls_key_file:
            return None
        if not (self.tls_cert_file and self.tls_key_file):
            raise ValueError("set both HERALD_TLS_CERT_FILE and HERALD_TLS_KEY_FILE, or neither")
        client_ca = Path(self.tls_client_ca_file) if self.tls_client_ca_file else None
        return ServerTls(Path(self.tls_cert_file), Path(self.tls_key_file), client_ca)

    def token_verifier(self) -> TokenVerifier | None:
        """The verifier of the RPCs' tokens; None (no tokens asked for) without a JWKS file."""
        if not self.jwks_file:
            return None
        return TokenVerifier(Path(self.jwks_file), self.jwt_issuer, self.jwt_audience)

    def server_limits(self) -> ServerLimits:
        """The gRPC server's limits, from this service's fields of the same names (declared
        with `server_limit`)."""
        return ServerLimits(
            **{each.name: getattr(self, each.name) for each in fields(ServerLimits)}
        )

    def kafka_security(self) -> KafkaSecurity:
        """The Kafka clients' security, the SASL password read from its file. Raises
        ValueError, with a one-line reason, for settings that do not hold together."""
        return KafkaSecurity.configured(*(getattr(self, name) for name in _KAFKA_SECURITY))

    @classmethod
    def kafka_security_from_env(cls, env: Mapping[str, str] = os.environ) -> KafkaSecurity:
        """kafka_security as from_env would set it, without reading (or failing on) the other
        settings: for the `herald` tools, which share only the Kafka ones."""
        return KafkaSecurity.configured(
            *(cls.value_from_env(name, env) for name in _KAFKA_SECURITY)
        )

    def producer_config(self, client_id: str, security: KafkaSecurity) -> ClientConfig:
        """Herald's producer settings, for this service's brokers."""
        return producer_config(self.kafka_bootstrap_servers, client_id, security)

    def consumer_config(
        self, group_id: str, client_id: str, security: KafkaSecurity, **overrides: str | int
    ) -> ClientConfig:
        """Herald's consumer settings, for this service's brokers."""
        return consumer_config(
            self.kafka_bootstrap_servers, group_id, client_id, security, **overrides
        )

    @classmethod
    def declared(cls) -> list[Declared]:
        """Every setting of this class, in declaration order (the shared ones first)."""
        return [
            Declared(each.metadata["variable"], each.default, each.metadata["meaning"])
            for each in fields(cls)
            if "variable" in each.metadata
        ]


# The fields KafkaSecurity.configured takes, in its order.
_KAFKA_SECURITY = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password_file",
    "kafka_ssl_ca_file",
)


def _set(each: Field[Any], env: Mapping[str, str]) -> bool:
    """Whether `env` sets the variable of this field."""
    return each.metadata.get("variable", "") in env


def _read(each: Field[Any], types: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """The field's value from its variable: converted to its type, raised to `at_least`."""
    value = types[each.name](env[each.metadata["variable"]])
    at_least = each.metadata["at_least"]
    return value if at_least is None else max(at_least, value)
