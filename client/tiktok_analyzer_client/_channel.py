"""What the sync and asyncio clients share: channel options, credentials, metadata."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

#: Reports can be large (per-frame results); uploads go in 1 MiB chunks.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024

CHANNEL_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # A service that restarts should be found again within seconds, not after gRPC's
    # default reconnect backoff of up to two minutes.
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def credentials(root_certificates: bytes | None, tls: bool) -> grpc.ChannelCredentials | None:
    if not tls and root_certificates is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=root_certificates)


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
