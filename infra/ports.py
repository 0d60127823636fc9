"""Free local ports, for brokers, services and sinks that several runs start side by side."""

import socket


def free_port(also: tuple[int, ...] = ()) -> int:
    """A free port, with the ports that far above it free too (1: a KRaft node's controller listens on the
    port after its own; 100, 200: the HTTP ports of a service's second and third instances)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + max(also, default=0) <= 65535 and all(_free(port + offset) for offset in also):
            return port


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
