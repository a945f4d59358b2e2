"""A throwaway test PKI made with the ``openssl`` CLI at test time, so no key is ever committed.

Every certificate is issued with ``openssl ca`` because it is the one OpenSSL 3.0 command that
takes explicit ``-startdate``/``-enddate`` (``openssl x509 -req`` in 3.0 has no ``-not_after``):
that is how we get a client certificate that is already expired and one that expires in ~10 days.
The CA itself is backdated a year (``openssl ca -selfsign``) so the expired client lies inside
the CA's validity and the broker refuses it for the one reason under test: its own notAfter.

Keys are EC P-256 (fast to generate) and mode 0600, like the kiosk's ``/etc/safehouse/tls/``.
``OPENSSL_CONF`` points at our own config so the machine's openssl.cnf changes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SERVER_SAN = "IP:127.0.0.1,DNS:localhost"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_OPENSSL_CNF = """\
# Written by tests/rig/pki.py: one config for every CA of the test PKI.
openssl_conf = openssl_init
[ openssl_init ]
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = placeholder
[ ca ]
default_ca = test_ca
[ test_ca ]
database = $ENV::SH_PKI_DB/index.txt
new_certs_dir = $ENV::SH_PKI_DB
rand_serial = yes
default_md = sha256
policy = policy_cn
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_cn ]
commonName = supplied
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class CertKey:
    """A certificate and its private key, as the two file paths TLS APIs want."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Paths of a generated test PKI.

    ``clients[name]`` has CN = ``name`` (the device id, which the broker takes as the username).
    ``other_ca_client``, ``expired_client`` and ``near_expiry_client`` all carry the CN of the
    first client, so a refusal can only come from the signer or the dates, never the name.
    """

    folder: Path
    ca: CertKey
    server: CertKey
    clients: Mapping[str, CertKey]
    other_ca: CertKey
    other_ca_client: CertKey
    expired_client: CertKey
    near_expiry_client: CertKey

    def client(self, name: str) -> CertKey:
        """The certificate of client ``name``; a KeyError names the clients that exist."""
        try:
            return self.clients[name]
        except KeyError:
            raise KeyError(f"no client certificate {name!r} in {self.folder}; have {sorted(self.clients)}") \
                from None


class _OpenSsl:
    """Runs openssl with our config and one issuing CA database, failing loudly with its stderr."""

    def __init__(self, folder: Path, openssl: str) -> None:
        self.folder, self.openssl = folder, openssl
        self.cnf = folder / "openssl.cnf"
        self.cnf.write_text(_OPENSSL_CNF.format(san=SERVER_SAN), encoding="utf-8")

    def run(self, *args: str, db: Path | None = None) -> None:
        env = {**os.environ, "OPENSSL_CONF": str(self.cnf), "SH_PKI_DB": str(db or self.folder)}
        res = subprocess.run([self.openssl, *args], capture_output=True, text=True, env=env,
                             timeout=30, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed ({res.returncode}):\n{res.stderr}")

    def key_and_csr(self, stem: Path, cn: str) -> tuple[Path, Path]:
        key, csr = stem.with_suffix(".key"), stem.with_suffix(".csr")
        self.run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(key), "-subj", f"/CN={cn}", "-out", str(csr))
        key.chmod(0o600)
        return key, csr

    def new_ca(self, name: str, cn: str, start: dt.datetime, end: dt.datetime) -> CertKey:
        """A self-signed CA issued through ``openssl ca -selfsign`` so its notBefore can be backdated."""
        db = self._db(name)
        key, csr = self.key_and_csr(self.folder / name, cn)
        cert = self.folder / f"{name}.crt"
        self.run("ca", "-batch", "-notext", "-selfsign", "-keyfile", str(key), "-in", str(csr),
                 "-out", str(cert), "-extensions", "ca_ext", "-startdate", _asn1(start),
                 "-enddate", _asn1(end), db=db)
        csr.unlink()
        return CertKey(cert, key)

    def issue(self, ca: CertKey, stem: Path, cn: str, ext: str, start: dt.datetime,
              end: dt.datetime) -> CertKey:
        """A leaf certificate with CN ``cn`` signed by ``ca``, valid from ``start`` to ``end``."""
        key, csr = self.key_and_csr(stem, cn)
        cert = stem.with_suffix(".crt")
        self.run("ca", "-batch", "-notext", "-cert", str(ca.cert), "-keyfile", str(ca.key), "-in", str(csr),
                 "-out", str(cert), "-extensions", ext, "-startdate", _asn1(start), "-enddate", _asn1(end),
                 db=self._db(ca.cert.stem))
        csr.unlink()
        return CertKey(cert, key)

    def _db(self, name: str) -> Path:
        db = self.folder / f"{name}.db"
        db.mkdir(exist_ok=True)
        (db / "index.txt").touch()
        return db


def _asn1(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ")


def make_pki(folder: Path, *, clients: Sequence[str] = ("SH-A", "SH-B"), openssl: str = "openssl") -> Pki:
    """Generate a CA, a server cert for 127.0.0.1/localhost and one client cert per name.

    Also an unrelated CA with a client signed by it (``other_ca_client``), a client whose
    notAfter is a day in the past (``expired_client``) and one valid for ~10 more days
    (``near_expiry_client``), all with the first client's CN. Takes ~0.3 s.
    """
    if not clients:
        raise ValueError("make_pki needs at least one client name (the device id of the first kiosk)")
    for name in clients:
        if not _NAME_RE.match(name):
            raise ValueError(f"client name {name!r} must be letters, digits, '.', '_' or '-' "
                             "(it is also a file name)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clients").mkdir(exist_ok=True)
    ssl = _OpenSsl(folder, openssl)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = dt.timedelta(days=1)
    ca = ssl.new_ca("ca", "safehouse test CA", now - 365 * day, now + 3650 * day)
    other_ca = ssl.new_ca("other-ca", "unrelated test CA", now - 365 * day, now + 3650 * day)
    live = (now - day, now + 825 * day)
    server = ssl.issue(ca, folder / "server", "localhost", "server_ext", *live)
    issued = {name: ssl.issue(ca, folder / "clients" / name, name, "client_ext", *live) for name in clients}
    first = clients[0]
    return Pki(
        folder=folder,
        ca=ca,
        server=server,
        clients=issued,
        other_ca=other_ca,
        other_ca_client=ssl.issue(other_ca, folder / "other-ca-client", first, "client_ext", *live),
        expired_client=ssl.issue(ca, folder / "expired-client", first, "client_ext",
                                 now - 30 * day, now - day),
        near_expiry_client=ssl.issue(ca, folder / "near-expiry-client", first, "client_ext",
                                     now - day, now + 10 * day),
    )
