"""What one client may take of a server: calls in progress, streams, message and metadata
sizes, pings and connection lifetimes.

Each limit is a field of ServerLimits, with its default and meaning; each service's settings
declare one variable per field (herald.settings.server_limit), so the limits are configured
like every other setting and README's table lists them. No grpc here: the settings read this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KIB = 1024
MIB = 1024 * KIB


def _limit(default: Any, meaning: str, *, at_least: float | None = None) -> Any:
    return field(default=default, metadata={"meaning": meaning, "at_least": at_least})


@dataclass(frozen=True)
class ServerLimits:
    """A server's limits; the defaults are the settings' defaults."""

    max_concurrent_rpcs: int = _limit(
        128,
        "calls in progress past which new ones get RESOURCE_EXHAUSTED (TOO_MANY_CALLS);"
        " a call counts once its request has arrived",
        at_least=1,
    )
    max_streams_per_connection: int = _limit(
        100, "HTTP/2 streams one connection may have open at once", at_least=1
    )
    max_message_bytes: int = _limit(
        MIB, "largest request or response message; a larger one is RESOURCE_EXHAUSTED"
    )
    max_metadata_bytes: int = _limit(16 * KIB, "largest header block (metadata) of a request")
    keepalive_time_s: float = _limit(
        60.0, "idle time after which the server pings a connection to see that it is alive"
    )
    keepalive_timeout_s: float = _limit(
        20.0, "how long that ping may go unanswered before the connection is closed"
    )
    min_client_ping_interval_s: float = _limit(
        10.0,
        "shortest interval between a client's pings while no data flows;"
        " a client that keeps pinging sooner is disconnected",
    )
    max_connection_age_s: float = _limit(
        1800.0, "a connection is asked to go away after this, so clients spread over servers"
    )
    max_connection_age_grace_s: float = _limit(
        30.0, "how long calls in progress on a connection past its age may take to finish"
    )

    def options(self) -> list[tuple[str, int]]:
        """The limits as grpc channel arguments for the server."""

        def ms(seconds: float) -> int:
            return round(seconds * 1000)

        return [
            ("grpc.max_concurrent_streams", self.max_streams_per_connection),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            # Between the soft limit and the hard one grpc refuses a random share of calls;
            # one figure for both makes the limit plain.
            ("grpc.max_metadata_size", self.max_metadata_bytes),
            ("grpc.absolute_max_metadata_size", self.max_metadata_bytes),
            ("grpc.keepalive_time_ms", ms(self.keepalive_time_s)),
            ("grpc.keepalive_timeout_ms", ms(self.keepalive_timeout_s)),
            # Idle connections are checked too, and a client's keepalive on one is within
            # the rules as long as it keeps to the interval below.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", ms(self.min_client_ping_interval_s)),
            # A ping sooner than that is a strike; past two, GOAWAY (too_many_pings).
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.max_connection_age_ms", ms(self.max_connection_age_s)),
            ("grpc.max_connection_age_grace_ms", ms(self.max_connection_age_grace_s)),
        ]
