"""A Socket.IO client by hand: the WebSocket upgrade and frames (RFC 6455), Engine.IO v4 and Socket.IO v5 on
top, over a bounded stream. Enough to open a session, connect a namespace and get one acknowledged event.

Used by the ``websocket`` health check. Standard library only, Python 3.8+.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.notification_common import MAX_MESSAGE, CheckProblem, CheckTimeout, Stream

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 16 * 1024  # bytes of HTTP response headers


class WebSocket:
    """The client side of a WebSocket over an upgraded stream: masked frames out, text messages in."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def send(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        size = len(payload)
        if size < 126:
            header.append(0x80 | size)
        elif size < 65536:
            header.append(0x80 | 126)
            header += struct.pack("!H", size)
        else:
            header.append(0x80 | 127)
            header += struct.pack("!Q", size)
        mask = os.urandom(4)
        header += mask
        # RFC 6455 5.3: every frame a client sends is masked.
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.stream.send(bytes(header) + masked)

    def send_text(self, text: str) -> None:
        self.send(0x1, text.encode("utf-8"))

    def _frame(self) -> tuple[bool, int, bytes]:
        """(fin, opcode, unmasked payload) of the next frame."""
        first, second = self.stream.read_exact(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self.stream.read_exact(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self.stream.read_exact(8))[0]
        if size > MAX_MESSAGE:
            raise CheckProblem("bad_answer", f"WebSocket frame of {size} bytes is larger than expected")
        mask = self.stream.read_exact(4) if second & 0x80 else b""
        payload = self.stream.read_exact(size)
        if mask:
            payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        return bool(first & 0x80), first & 0x0F, payload

    def receive_text(self) -> str:
        """The next complete text message; answers pings, skips binary messages, raises on close."""
        fragments: list[bytes] = []
        message_opcode = 0
        while True:
            fin, opcode, payload = self._frame()
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                why = payload[2:].decode("utf-8", errors="replace")
                raise CheckProblem(
                    "bad_answer", f"the server closed the WebSocket (code {code}{': ' + why if why else ''})"
                )
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode in (0x1, 0x2):
                message_opcode = opcode
                fragments = [payload]
            elif opcode == 0x0:
                fragments.append(payload)
            else:
                raise CheckProblem("bad_answer", f"unknown WebSocket opcode {opcode}")
            if fin:
                if message_opcode == 0x1:
                    return b"".join(fragments).decode("utf-8", errors="replace")
                fragments = []  # a binary message: not part of this protocol exchange

    def close(self) -> None:
        with contextlib.suppress(OSError, CheckTimeout):
            self.send(0x8, struct.pack("!H", 1000))


@dataclass
class SocketIOPacket:
    type: int
    namespace: str
    ack_id: int | None
    data: Any


def parse_socketio(text: str) -> SocketIOPacket:
    """A Socket.IO v5 packet (what follows the Engine.IO message type ``4``)."""
    if not text or not text[0].isdigit():
        raise CheckProblem("bad_answer", f"not a Socket.IO packet: {text[:80]!r}")
    packet_type, index = int(text[0]), 1
    if packet_type in (5, 6):  # binary event/ack: "<attachments>-" comes first
        index = text.index("-", index) + 1
    namespace = "/"
    if index < len(text) and text[index] == "/":
        comma = text.find(",", index)
        end = len(text) if comma < 0 else comma
        namespace = text[index:end]
        index = end + 1
    digits = index
    while digits < len(text) and text[digits].isdigit():
        digits += 1
    ack_id = int(text[index:digits]) if digits > index else None
    rest = text[digits:]
    try:
        data = json.loads(rest) if rest else None
    except ValueError:
        raise CheckProblem("bad_answer", f"Socket.IO packet with a body that is not JSON: {text[:80]!r}") from None
    return SocketIOPacket(packet_type, namespace, ack_id, data)


def host_header(host: str, port: int, default_port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default_port else f"{shown}:{port}"


class SocketIOClient:
    """One Socket.IO session on one namespace, step by step, so that a check can record each step's outcome.

    Every step sets the deadline's ``step`` and raises CheckProblem for an answer outside the protocol."""

    def __init__(self, stream: Stream, namespace: str) -> None:
        self.stream = stream
        self.deadline = stream.deadline
        self.ws = WebSocket(stream)
        self.namespace = namespace
        self.prefix = "" if namespace == "/" else namespace + ","
        self.upgraded = False
        self.connected = False

    def upgrade(self, host: str, port: int, tls: bool, path: str) -> tuple[int, str]:
        """Ask for the WebSocket upgrade of the Engine.IO ``path``: (HTTP status, status text after the version).

        The connection is upgraded only for 101 (its Sec-WebSocket-Accept checked); any other status is the
        caller's to report."""
        key = base64.b64encode(os.urandom(16)).decode()
        self.deadline.step = "sending the WebSocket upgrade request"
        self.stream.send(
            (
                f"GET {path}?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {host_header(host, port, 443 if tls else 80)}\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "User-Agent: notification_health\r\n"
                "\r\n"
            ).encode()
        )
        self.deadline.step = "waiting for the WebSocket upgrade answer"
        head = self.stream.read_until(b"\r\n\r\n", MAX_HEAD).decode("iso-8859-1")
        status_line, *header_lines = head.split("\r\n")
        status_parts = status_line.split(" ", 2)
        if len(status_parts) < 2 or not status_parts[1].isdigit():
            raise CheckProblem("bad_answer", f"not an HTTP answer to the upgrade request: {status_line[:80]!r}")
        status = int(status_parts[1])
        if status != 101:
            return status, status_line[9:].strip()
        headers = {}
        for line in header_lines:
            name, _sep, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise CheckProblem("bad_answer", "the WebSocket upgrade answer has a wrong Sec-WebSocket-Accept")
        self.upgraded = True
        return status, status_line[9:].strip()

    def open(self) -> Any:
        """The Engine.IO session id from the server's open packet."""
        self.deadline.step = "waiting for the Engine.IO open packet"
        opening = self.ws.receive_text()
        try:
            engineio = json.loads(opening[1:]) if opening.startswith("0") else None
        except ValueError:
            engineio = None
        if not isinstance(engineio, dict) or not engineio.get("sid"):
            raise CheckProblem("bad_answer", f"expected the Engine.IO open packet 0{{...}}, got {opening[:80]!r}")
        return engineio["sid"]

    def receive(self) -> SocketIOPacket:
        """The next Socket.IO packet; Engine.IO pings are answered on the way."""
        while True:
            packet = self.ws.receive_text()
            if packet.startswith("2"):
                self.ws.send_text("3" + packet[1:])
            elif packet.startswith("4"):
                return parse_socketio(packet[1:])
            elif packet.startswith("1"):
                raise CheckProblem("bad_answer", "the server closed the Engine.IO session")

    def connect(self, auth: Any) -> str | None:
        """CONNECT to the namespace (with ``auth`` when given): None once connected, else the server's
        CONNECT_ERROR message."""
        self.deadline.step = f"waiting for the Socket.IO CONNECT answer on {self.namespace}"
        self.ws.send_text("40" + self.prefix + (json.dumps(auth) if auth else ""))
        while True:
            packet = self.receive()
            if packet.namespace != self.namespace:
                continue
            if packet.type == 0:
                self.connected = True
                return None
            if packet.type == 4:
                data = packet.data
                return str(data.get("message") if isinstance(data, dict) else data)

    def call(self, event: str) -> Any:
        """Emit ``event`` with acknowledgement id 1 and return the first argument of the acknowledgement."""
        self.deadline.step = f"waiting for the acknowledgement of the {event!r} event"
        self.ws.send_text(f"42{self.prefix}1" + json.dumps([event]))
        while True:
            packet = self.receive()
            if packet.namespace != self.namespace:
                continue
            if packet.type == 1:
                raise CheckProblem("bad_answer", f"the server disconnected the namespace {self.namespace}")
            if packet.type == 3 and packet.ack_id == 1:
                return packet.data[0] if isinstance(packet.data, list) and packet.data else packet.data

    def close(self) -> None:
        """Leave the namespace and close the WebSocket as far as they were opened; never raises."""
        if self.upgraded:
            try:
                if self.connected:
                    self.ws.send_text("41" + self.prefix)
            except (OSError, CheckTimeout):
                pass
            self.ws.close()
        self.stream.close()
