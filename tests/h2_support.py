"""A hostile HTTP/2 client, frame by frame with h2 on a raw socket: what grpc's own clients
never do (streams that stall after their headers, pings without pause)."""

from __future__ import annotations

import socket
import time

import h2.config
import h2.connection
import h2.events


class RawConnection:
    """One HTTP/2 connection, driven frame by frame; with `stalled` streams that each sent
    HEADERS for GetUser, and no DATA."""

    def __init__(self, port: int, stalled: int = 0) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        # The preface and SETTINGS.
        self.h2.initiate_connection()
        for _ in range(stalled):
            self.h2.send_headers(
                self.h2.get_next_available_stream_id(),
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", "/herald.users.v1.UserService/GetUser"),
                    (":authority", f"127.0.0.1:{port}"),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                ],
                end_stream=False,
            )
        self.socket.sendall(self.h2.data_to_send())
        self.events: list[h2.events.Event] = []
        self.closed = False

    def read(self, for_s: float) -> None:
        """Take what the server sent for a while, acknowledging its SETTINGS and pings."""
        deadline = time.monotonic() + for_s
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                data = self.socket.recv(65536)
                received = self.h2.receive_data(data)
                self.events.extend(received)
                if any(isinstance(e, h2.events.ConnectionTerminated) for e in received):
                    data = b""  # GOAWAY: h2 takes no more frames
                else:
                    self.socket.sendall(self.h2.data_to_send())
            except TimeoutError:
                break
            except OSError:  # reset by the server
                data = b""
            if not data:
                self.closed = True
                break

    def ended_streams(self) -> list[object]:
        """What the server did to end a stream or the connection: nothing, if all stalled."""
        ending = (h2.events.StreamReset, h2.events.StreamEnded, h2.events.ConnectionTerminated)
        ended: list[object] = [event for event in self.events if isinstance(event, ending)]
        return [*ended, "closed"] if self.closed else ended
