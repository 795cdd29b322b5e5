"""What the browser's server answers, and to whom: the Host check and the security headers of every response.

    Guard(app, allowed_hosts)   ASGI middleware: a request whose Host header is not one of `allowed_hosts`
                                gets 421 (a page of another origin that reaches us by DNS rebinding names its
                                own host); only GET and HEAD are served (405). Every response carries a
                                Content-Security-Policy with a fresh nonce (the app's own inline script is the
                                only one that runs), nosniff, no-referrer and frame denial.
    allowed_hosts(host)         the names a server bound to `host` answers to
    check_bind(host, ...)       refuse a non-loopback --host without --allow-remote; else the warning line
"""
from __future__ import annotations

import ipaddress
import secrets
import socket

from lamina.errors import InputError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, allow_remote: bool) -> str | None:
    """None for a loopback address; the warning to print for another one with `allow_remote`; else refuse."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise InputError(f"--host {host} serves the store beyond this machine; add --allow-remote if anyone who "
                         f"can reach port {port} may read it, or leave --host at 127.0.0.1")
    return (f"warning: serving on {host}:{port}: this store and its index are readable by anyone who can reach "
            "that port (lamina browse has no login)")


def allowed_hosts(host: str) -> set[str]:
    """Host names (no port) a server bound to `host` answers to: the loopback names, and for another address
    that address (for 0.0.0.0 / ::, this machine's names and addresses)."""
    names = set(LOOPBACK_NAMES)
    if is_loopback(host):
        return names
    names.add(host.strip("[]"))
    if host in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname()
        names |= {hostname, socket.getfqdn()}
        try:
            names |= {info[4][0] for info in socket.getaddrinfo(hostname, None)}
        except OSError:
            pass
    return {n.lower() for n in names}


def host_of(header: str) -> str:
    """The host name of a Host header, without port or IPv6 brackets, lower case ('' when malformed)."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def csp(nonce: str) -> str:
    return ("default-src 'none'; "
            f"script-src 'self' 'nonce-{nonce}'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class Guard:
    """ASGI middleware: the Host check, GET/HEAD only, and the security headers (see the module's docstring)."""

    def __init__(self, app, hosts: set[str]):
        self.app, self.hosts = app, {h.lower() for h in hosts}

    @property
    def state(self):
        """The wrapped app's state (`state.data`: the BrowseData served)."""
        return self.app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = host_of(headers.get(b"host", b"").decode("latin-1"))
        nonce = secrets.token_urlsafe(16)
        if host not in self.hosts:
            return await self._plain(send, 421, f"this server answers only to {', '.join(sorted(self.hosts))}", nonce)
        if scope["method"] not in ("GET", "HEAD"):
            return await self._plain(send, 405, "read-only: GET only", nonce)
        scope.setdefault("state", {})["nonce"] = nonce

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.security_headers(nonce)]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def security_headers(nonce: str) -> list[tuple[bytes, bytes]]:
        return [(b"content-security-policy", csp(nonce).encode()), (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                (b"cross-origin-resource-policy", b"same-origin")]

    async def _plain(self, send, status: int, text: str, nonce: str) -> None:
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *self.security_headers(nonce)]})
        await send({"type": "http.response.body", "body": body})
