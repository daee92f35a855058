"""A throwaway certificate authority and serving certificates for loopback servers (the control plane,
the simulator's OIDC issuer): each development server gets its own CA, as a real one would."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(PEM)


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))


def new_authority(common_name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    certificate = (
        _validity(x509.CertificateBuilder())
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


def serving_certificate(
    authority: Authority,
    common_name: str,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = (),
) -> tuple[bytes, bytes]:
    """(certificate PEM, PKCS#8 key PEM) for 127.0.0.1, the given IPs and the given DNS names."""
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    for address in ("127.0.0.1", *ip_addresses):
        names.append(x509.IPAddress(ipaddress.ip_address(address)))
    return _leaf(authority, common_name, ExtendedKeyUsageOID.SERVER_AUTH, x509.SubjectAlternativeName(names))


def client_certificate(authority: Authority, common_name: str) -> tuple[bytes, bytes]:
    """(certificate PEM, PKCS#8 key PEM) a client presents: the API server takes the CN as the user."""
    return _leaf(authority, common_name, ExtendedKeyUsageOID.CLIENT_AUTH)


def _leaf(
    authority: Authority,
    common_name: str,
    usage: x509.ObjectIdentifier,
    alternative_names: x509.SubjectAlternativeName | None = None,
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _validity(x509.CertificateBuilder())
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if alternative_names is not None:
        builder = builder.add_extension(alternative_names, critical=False)
    certificate = builder.sign(authority.key, hashes.SHA256())
    key_pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return certificate.public_bytes(PEM), key_pem


def write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path
