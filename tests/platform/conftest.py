"""Fixtures of the platform tests: the API key never reaches a log record; a local HTTP
server on 127.0.0.1; for the proxy tests, a CA and server certificate made with openssl,
and tinyproxy instances started per test."""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.proxy_support import StartProxy, Tls
from tests.platform.support import KEY, LocalServer
from tests.tinyproxy import TinyProxy, tinyproxy_executable


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture everything hello_device logs, and fail if the API key shows up."""
    caplog.set_level(logging.DEBUG, logger="hello_device")
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    for record in records:
        assert KEY not in record.getMessage(), record.getMessage()
        assert KEY not in str(record.args)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    s = LocalServer()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A CA, and a certificate it signed for 127.0.0.1 and localhost (made by openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60, cwd=d)

    run(
        *("req", "-x509", *ec, "-days", "2", "-keyout", "ca.key", "-out", "ca.pem"),
        *("-subj", "/CN=hello-device test CA"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )
    run("req", "-new", *ec, "-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    run(
        *("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
        *("-set_serial", "4242", "-days", "2", "-out", "cert.pem", "-extfile", "server.ext"),
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "cert.pem", d / "key.pem")
    return Tls(d / "ca.pem", server)


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[StartProxy]:
    """``tinyproxy(*config_lines)`` starts one; all are stopped at the end of the test."""
    executable = tinyproxy_executable()
    started: list[TinyProxy] = []

    def start(*extra: str) -> TinyProxy:
        proxy = TinyProxy(executable, tmp_path / f"tinyproxy-{len(started)}", extra)
        started.append(proxy)
        proxy.start()
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
