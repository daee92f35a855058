"""The Kubernetes client over TLS: the server is checked against the kubeconfig's CA (or not, with
insecure-skip-tls-verify), and the client certificate is presented either way, on the lean client's
requests and on aiohttp's watches alike."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from kubescim.kube import ApiUnavailable, Kube, KubeConfig, Resource
from kubescim_dev.pki import client_certificate, new_authority, serving_certificate, write_private
from tests.unit.http_stub import serve

WIDGETS = Resource("example.com", "v1", "widgets")


@dataclass(frozen=True)
class TlsServer:
    url: str
    ca_file: str  # the server's CA
    client_cert: tuple[str, str]  # a certificate (and key) the server accepts
    stranger_cert: tuple[str, str]  # one from a CA it does not know


def _pair(directory: Path, name: str, pem: tuple[bytes, bytes]) -> tuple[str, str]:
    certificate = directory / f"{name}.crt"
    certificate.write_bytes(pem[0])
    return str(certificate), str(write_private(directory / f"{name}.key", pem[1]))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    """A TLS server that requires a client certificate from its CA and answers with the client's CN."""
    authority, stranger = new_authority("server-ca"), new_authority("stranger-ca")
    serving = _pair(tmp_path, "serving", serving_certificate(authority, "apiserver"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=authority.pem.decode())
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(*serving)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(authority.pem)

    async def handle(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peer = request.transport.get_extra_info("peercert")
        common_name = dict(field[0] for field in peer["subject"])["commonName"]
        if request.query.get("watch") == "true":
            response = web.StreamResponse()
            await response.prepare(request)
            event = b'{"type":"ADDED","object":{"metadata":{"name":"%s"}}}\n' % common_name.encode()
            await response.write(event)
            return response
        return web.json_response({"metadata": {"name": common_name}})

    async with serve(handle, context) as url:
        yield TlsServer(
            url,
            str(ca_file),
            _pair(tmp_path, "alice", client_certificate(authority, "alice")),
            _pair(tmp_path, "mallory", client_certificate(stranger, "mallory")),
        )


async def _first_watch_event(kube: Kube) -> str:
    async for event in kube.watch(WIDGETS, "default", resource_version="1"):
        return str(event["object"]["metadata"]["name"])
    raise AssertionError("the watch ended without an event")


async def test_the_client_certificate_is_presented_with_the_servers_ca(server: TlsServer) -> None:
    config = KubeConfig(server=server.url, ca_file=server.ca_file, client_cert=server.client_cert)
    async with Kube(config) as kube:
        assert (await kube.get(WIDGETS, "w", "default"))["metadata"]["name"] == "alice"
        assert await _first_watch_event(kube) == "alice"


async def test_insecure_skip_tls_verify_still_presents_the_client_certificate(server: TlsServer) -> None:
    config = KubeConfig(server=server.url, insecure=True, client_cert=server.client_cert)
    async with Kube(config) as kube:
        assert (await kube.get(WIDGETS, "w", "default"))["metadata"]["name"] == "alice"
        assert await _first_watch_event(kube) == "alice"


async def test_a_server_the_ca_did_not_sign_is_refused(server: TlsServer, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(new_authority("other-ca").pem)
    config = KubeConfig(server=server.url, ca_file=str(other_ca), client_cert=server.client_cert)
    async with Kube(config) as kube:
        with pytest.raises(ApiUnavailable):
            await kube.get(WIDGETS, "w", "default")


async def test_a_certificate_the_server_does_not_trust_is_refused(server: TlsServer) -> None:
    config = KubeConfig(server=server.url, ca_file=server.ca_file, client_cert=server.stranger_cert)
    async with Kube(config) as kube:
        with pytest.raises(ApiUnavailable):
            await kube.get(WIDGETS, "w", "default")
