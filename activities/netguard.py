"""Where the `http_get` tool may connect: public addresses only, whatever the URL says.

The allow-list names hosts; this decides by the *addresses* they resolve to, so no spelling
reaches an internal service: `localhost`, `127.1`, `2130706433`, `0x7f000001`,
`[::ffff:127.0.0.1]`, a name whose DNS record points at 10.0.0.5 or 169.254.169.254. The
rules, in order:

- cloud metadata (link-local 169.254.0.0/16 and fe80::/10, AWS's fd00:ec2::254, and the
  metadata host names) is never fetched, not even from a host the operator marked private;
- loopback, private, shared (100.64/10) and other non-global unicast addresses only for hosts
  listed in `http_private_hosts` (an intranet wiki, say; and the tests' local server);
- unspecified, multicast and reserved addresses never.

Every address a name resolves to must pass. After connecting, the address actually
connected to is checked again, so a DNS answer that changes between the check and the
connection (rebinding) is caught before the body is read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.packet.net",
    }
)
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})


def refusal(address: IpAddress, *, private_ok: bool) -> str | None:
    """Why `address` may not be fetched, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_link_local or address in METADATA_ADDRESSES:
        return "link-local: where cloud metadata lives"
    if address.is_unspecified or address.is_multicast:
        return "not a unicast address"
    if address.is_loopback:  # before `is_reserved`: ::1 lies in the reserved ::/8
        return None if private_ok else "loopback or private network"
    if address.is_reserved:
        return "not a unicast address"
    if not address.is_global:
        return None if private_ok else "loopback or private network"
    return None


async def vet_host(host: str, port: int, *, private_ok: bool) -> str | None:
    """Why `host` may not be fetched (None: every address it resolves to may be)."""
    name = host.lower().rstrip(".")
    if name in METADATA_HOSTS:
        return f"{host} is a cloud metadata host"
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return f"{host} does not resolve"
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        reason = refusal(address, private_ok=private_ok)
        if reason is not None:
            return f"{host} resolves to {address} ({reason})"
    return None
