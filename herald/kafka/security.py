"""How Herald's Kafka clients prove who they are and whom they trust: TLS, SASL/SCRAM.

The settings come from the environment (herald.settings declares the variables); the SASL
password only ever from a file, so it is in no environment, command line (`ps`), log line,
repr or error text. librdkafka gets it in the client configuration and keeps it to itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
# The mechanisms of SCRAM users (KIP-554 credentials): the password is never sent to the
# broker. PLAIN, GSSAPI and OAUTHBEARER need configuration Herald does not provide.
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
DEFAULT_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class KafkaSecurity:
    """One client's transport security and identity; PLAINTEXT, anonymous, by default.

    Construction checks the combination, so a client is never created with settings that
    would silently mean less security than asked for (a username over plaintext, say).
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = DEFAULT_MECHANISM
    sasl_username: str = ""
    # Never shown: a dataclass repr (and str) would print it into any log of the object.
    sasl_password: str = field(default="", repr=False)
    ssl_ca_file: str = ""

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            # SASL_PLAINTEXT is refused on purpose: SCRAM keeps the password off the wire,
            # but everything after the handshake (personal data in events) would be clear
            # text, and an on-path attacker could take over the authenticated connection.
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL {self.protocol!r} is not one of {', '.join(PROTOCOLS)}"
            )
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise ValueError(
                    f"KAFKA_SASL_MECHANISM {self.sasl_mechanism!r} is not one of "
                    f"{', '.join(MECHANISMS)}"
                )
            if not self.sasl_username or not self.sasl_password:
                raise ValueError(
                    "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and "
                    "KAFKA_SASL_PASSWORD_FILE"
                )
        elif self.sasl_username or self.sasl_password:
            raise ValueError(
                f"a SASL username or password is set, but KAFKA_SECURITY_PROTOCOL is "
                f"{self.protocol}: set it to SASL_SSL, or unset them"
            )
        if self.ssl_ca_file and not self.tls:
            raise ValueError("KAFKA_SSL_CA_FILE is set, but KAFKA_SECURITY_PROTOCOL is PLAINTEXT")

    @classmethod
    def configured(
        cls,
        protocol: str,
        sasl_mechanism: str,
        sasl_username: str,
        sasl_password_file: str,
        ssl_ca_file: str,
    ) -> KafkaSecurity:
        """The security the settings describe, the password read from its file.

        Raises ValueError, naming the setting, for a combination that does not hold together
        or a file that cannot be read; the error never holds the password or part of it.
        """
        password = _password(Path(sasl_password_file)) if sasl_password_file else ""
        if ssl_ca_file:
            # librdkafka would refuse it too, but only as "ssl.ca.location failed: BIO lib".
            _read("KAFKA_SSL_CA_FILE", Path(ssl_ca_file))
        return cls(
            protocol=protocol.strip().upper() or "PLAINTEXT",
            sasl_mechanism=sasl_mechanism.strip().upper() or DEFAULT_MECHANISM,
            sasl_username=sasl_username.strip(),
            sasl_password=password,
            ssl_ca_file=ssl_ca_file,
        )

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol == "SASL_SSL"

    @property
    def principal(self) -> str | None:
        """The principal the brokers' authorizer sees (`User:<name>`); None when anonymous."""
        return f"User:{self.sasl_username}" if self.sasl else None

    def client_config(self) -> dict[str, str]:
        """The librdkafka properties for this security, to merge into a client's config.

        Hostname verification stays librdkafka's default (`https` since 2.0): the broker's
        certificate must name the address the client connects to.
        """
        config = {"security.protocol": self.protocol}
        if self.ssl_ca_file:
            config["ssl.ca.location"] = self.ssl_ca_file
        if self.sasl:
            config["sasl.mechanisms"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password
        return config


PLAINTEXT = KafkaSecurity()


def _password(path: Path) -> str:
    """The file's text without its line ending (`echo pw > file` adds one)."""
    try:
        password = _read("KAFKA_SASL_PASSWORD_FILE", path).decode().rstrip("\r\n")
    except UnicodeDecodeError:
        # Its message would quote the offending byte of the password.
        raise ValueError(f"KAFKA_SASL_PASSWORD_FILE {path} is not UTF-8 text") from None
    if not password:
        raise ValueError(f"KAFKA_SASL_PASSWORD_FILE {path} is empty")
    return password


def _read(variable: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        # A ValueError like every other bad setting, naming the variable and file only.
        raise ValueError(f"{variable} {path}: cannot read it ({error.strerror})") from None
