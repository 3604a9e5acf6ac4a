"""``quantlab data fetch`` against a loopback stand-in for the Databento API (no network).

The real ``databento.Historical`` client talks HTTPS to a small threaded server on 127.0.0.1
(the client forces ``https://`` on any gateway, so the server uses a throw-away self-signed
certificate that ``requests`` is told to trust through ``REQUESTS_CA_BUNDLE``). The server
answers ``POST /v0/metadata.get_cost`` with a number and ``POST /v0/timeseries.get_range``
with the real OPRA.PILLAR DBN test files from ``shared/data/databento``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import secrets
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from quantlab.data import fetch as fetch_mod
from quantlab.data import layout
from quantlab.errors import ConfigError, DataError

DBN_DIR = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "databento" / "OPRA.PILLAR"
)
if not DBN_DIR.is_dir():
    pytest.skip(f"real DBN test files not found at {DBN_DIR}", allow_module_level=True)

SCHEMAS = ("definition", "cbbo-1m", "statistics")
# 2025-02-20 (Thu) and 2025-02-21 (Fri), bracketing a weekend that must be skipped.
START, END = "2025-02-20", "2025-02-24"
DAYS = (dt.date(2025, 2, 20), dt.date(2025, 2, 21), dt.date(2025, 2, 24))
COST_EACH = 0.25


def _make_cert(folder: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class StandIn:
    """What the fake API does next, and what it has seen."""

    def __init__(self) -> None:
        self.files = {s: (DBN_DIR / f"test_data.{s}.dbn.zst").read_bytes() for s in SCHEMAS}
        self.cost = COST_EACH
        self.fail: dict[str, list[int]] = {}  # schema -> HTTP statuses to answer first
        self.truncate: set[str] = set()
        self.short: set[str] = set()  # schemas answered with half the file, honestly labelled
        self.seen: list[tuple[str, dict[str, str], str]] = []
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.cost = COST_EACH
            self.fail.clear()
            self.truncate.clear()
            self.short.clear()
            self.seen.clear()

    def get_range_calls(self, schema: str | None = None) -> list[dict[str, str]]:
        return [
            f
            for p, f, _ in self.seen
            if p.endswith("timeseries.get_range") and (schema is None or f["schema"] == schema)
        ]

    def cost_calls(self) -> list[dict[str, str]]:
        return [f for p, f, _ in self.seen if p.endswith("metadata.get_cost")]


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: bytes, ctype: str, length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
            auth = self.headers.get("Authorization", "")
            with state.lock:
                state.seen.append((self.path, form, auth))
            if self.path == "/v0/metadata.get_cost":
                self._send(200, json.dumps(state.cost).encode(), "application/json")
            elif self.path == "/v0/timeseries.get_range":
                schema = form.get("schema", "")
                with state.lock:
                    queued = state.fail.get(schema) or []
                    status = queued.pop(0) if queued else None
                if status is not None:
                    body = json.dumps({"detail": "stand-in is busy"}).encode()
                    self._send(status, body, "application/json")
                    return
                data = state.files[schema]
                if schema in state.truncate:  # promise the whole body, send half, hang up
                    self._send(200, data[: len(data) // 2], "application/octet-stream", len(data))
                    self.close_connection = True
                    return
                if schema in state.short:
                    data = data[: len(data) // 2]
                self._send(200, data, "application/octet-stream")
            else:
                self._send(404, b'{"detail": "no such endpoint"}', "application/json")

    return Handler


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = _make_cert(folder)
    state = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


@pytest.fixture()
def env(api, monkeypatch: pytest.MonkeyPatch):
    """A fresh stand-in state, a random API key in the environment, the stand-in trusted."""
    state, gateway, cert = api
    state.reset()
    key = "db-" + secrets.token_hex(15)[:29]
    monkeypatch.setenv("DATABENTO_API_KEY", key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return state, gateway, key


def _fetch(store: Path, gateway: str, **kw):
    sleeps: list[float] = []
    kw.setdefault("max_cost", 5.0)
    report = fetch_mod.fetch(store, START, END, gateway=gateway, sleep=sleeps.append, **kw)
    return report, sleeps


def _secret_forms(key: str) -> list[str]:
    return [key, base64.b64encode(f"{key}:".encode()).decode()]


def test_cost_refusal_downloads_nothing(env, tmp_path: Path) -> None:
    state, gateway, _ = env
    with pytest.raises(fetch_mod.CostRefused) as info:
        _fetch(tmp_path, gateway, max_cost=1.0)
    total = COST_EACH * len(SCHEMAS) * len(DAYS)
    assert info.value.cost == pytest.approx(total)
    assert f"${total:,.2f}" in str(info.value) and "$1.00" in str(info.value)
    assert "--yes" in str(info.value)
    assert len(state.cost_calls()) == len(SCHEMAS) * len(DAYS)
    assert state.get_range_calls() == []
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").rglob("*.dbn.zst"))


def test_confirm_callback_decides(env, tmp_path: Path) -> None:
    state, gateway, _ = env
    asked: list[float] = []
    with pytest.raises(fetch_mod.CostRefused):
        _fetch(tmp_path, gateway, max_cost=0.0, confirm=lambda c: asked.append(c) or False)
    assert asked and state.get_range_calls() == []
    report, _ = _fetch(tmp_path, gateway, max_cost=0.0, confirm=lambda c: True)
    assert len(report.downloaded) == len(SCHEMAS) * len(DAYS)


def test_download_verifies_and_resume_skips(env, tmp_path: Path) -> None:
    import databento as db

    state, gateway, _ = env
    report, sleeps = _fetch(tmp_path, gateway)
    assert sleeps == [] and report.attempts == len(SCHEMAS) * len(DAYS)
    assert report.estimated_cost == pytest.approx(COST_EACH * len(SCHEMAS) * len(DAYS))
    calls = state.get_range_calls()
    assert len(calls) == len(SCHEMAS) * len(DAYS)
    first = calls[0]
    assert first["dataset"] == "OPRA.PILLAR" and first["stype_in"] == "parent"
    assert first["symbols"] == "SPX.OPT,SPXW.OPT"
    # The ET day as a UTC range: 2025-02-20 00:00 EST = 05:00Z, to the next midnight ET.
    assert first["start"].startswith("2025-02-20T05:00:00") and first["end"].startswith(
        "2025-02-21T05:00:00"
    )
    assert {c["schema"] for c in calls} == set(SCHEMAS)
    for day in DAYS:
        for schema in SCHEMAS:
            path = layout.raw_file(tmp_path, "SPX", day, schema)
            assert path.is_file() and not path.with_name(path.name + ".part").exists()
            receipt = json.loads(layout.raw_receipt_file(tmp_path, "SPX", day, schema).read_text())
            assert receipt["size"] == path.stat().st_size and receipt["schema"] == schema
            assert receipt["records"] == (1 if schema == "definition" else 4)
            assert str(db.DBNStore.from_file(path).schema) == schema
    assert not list(tmp_path.rglob("*.part"))

    # Resume: everything verified, the server sees nothing at all.
    state.seen.clear()
    again, _ = _fetch(tmp_path, gateway)
    assert state.seen == [] and again.downloaded == []
    assert len(again.skipped) == len(SCHEMAS) * len(DAYS)

    # A damaged file (same size, one byte changed) fails its receipt and is fetched again.
    bad = layout.raw_file(tmp_path, "SPX", DAYS[1], "cbbo-1m")
    raw = bytearray(bad.read_bytes())
    raw[-1] ^= 0xFF
    bad.write_bytes(bytes(raw))
    assert fetch_mod.check_receipt(
        bad, layout.raw_receipt_file(tmp_path, "SPX", DAYS[1], "cbbo-1m")
    )
    third, _ = _fetch(tmp_path, gateway)
    assert third.downloaded == [bad]
    assert len(state.get_range_calls()) == 1 and len(state.cost_calls()) == 1


def test_transient_503_is_retried(env, tmp_path: Path) -> None:
    state, gateway, _ = env
    state.fail["cbbo-1m"] = [503, 429]
    report, sleeps = _fetch(tmp_path, gateway, schemas=["cbbo-1m"], backoff=0.5)
    assert sleeps == [0.5, 1.0]  # exponential backoff, not actually slept (injected sleep)
    assert len(report.downloaded) == len(DAYS)
    assert len(state.get_range_calls("cbbo-1m")) == len(DAYS) + 2
    assert fetch_mod.verify_dbn_file(report.downloaded[0], schema="cbbo-1m") == 4


def test_permanent_error_is_not_retried(env, tmp_path: Path) -> None:
    state, gateway, key = env
    state.fail["definition"] = [422]
    with pytest.raises(DataError, match="422") as info:
        _fetch(tmp_path, gateway, schemas=["definition"])
    assert len(state.get_range_calls()) == 1
    assert all(s not in str(info.value) for s in _secret_forms(key))


def test_truncated_body_leaves_no_complete_looking_file(env, tmp_path: Path) -> None:
    state, gateway, key = env
    state.truncate.add("statistics")
    with pytest.raises(DataError) as info:
        _fetch(tmp_path, gateway, schemas=["definition", "statistics"], retries=2, backoff=0.01)
    msg = str(info.value)
    assert "statistics 2025-02-20" in msg and "after 3 attempts" in msg
    assert len(state.get_range_calls("statistics")) == 3
    target = layout.raw_file(tmp_path, "SPX", DAYS[0], "statistics")
    assert not target.exists()
    assert not layout.raw_receipt_file(tmp_path, "SPX", DAYS[0], "statistics").exists()
    assert not list(tmp_path.rglob("*.part"))
    # The definition file finished before the failure is complete and verified.
    done = layout.raw_file(tmp_path, "SPX", DAYS[0], "definition")
    assert (
        fetch_mod.check_receipt(
            done, layout.raw_receipt_file(tmp_path, "SPX", DAYS[0], "definition")
        )
        is None
    )
    assert all(s not in msg for s in _secret_forms(key))


def test_short_body_fails_verification(env, tmp_path: Path) -> None:
    state, gateway, _ = env
    state.short.add("cbbo-1m")
    with pytest.raises(DataError, match=r"cbbo-1m 2025-02-20 failed after 2 attempts") as info:
        _fetch(tmp_path, gateway, schemas=["cbbo-1m"], retries=1, backoff=0.01)
    assert "truncated" in str(info.value) or "does not decode" in str(info.value)
    assert not any(tmp_path.rglob("*.dbn.zst*"))


def test_verify_rejects_truncated_and_foreign_files(tmp_path: Path) -> None:
    good = (DBN_DIR / "test_data.cbbo-1m.dbn.zst").read_bytes()
    cut = tmp_path / "cut.dbn.zst"
    cut.write_bytes(good[: len(good) - 8])
    with pytest.raises(DataError, match=r"truncated|does not decode"):
        fetch_mod.verify_dbn_file(cut)
    with pytest.raises(DataError, match="schema is 'cbbo-1m', expected 'definition'"):
        fetch_mod.verify_dbn_file(DBN_DIR / "test_data.cbbo-1m.dbn.zst", schema="definition")
    junk = tmp_path / "junk.dbn.zst"
    junk.write_bytes(b"not a dbn file at all")
    with pytest.raises(DataError):
        fetch_mod.verify_dbn_file(junk)


def test_missing_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="DATABENTO_API_KEY is not set"):
        fetch_mod.fetch(tmp_path, START, START)


def test_bad_schema_is_an_input_error(tmp_path: Path) -> None:
    from quantlab.errors import InputError

    with pytest.raises(InputError, match="mbo"):
        fetch_mod.plan(tmp_path, START, END, schemas=["mbo"])


def test_cli_never_shows_the_key(
    env, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd
) -> None:
    from typer.testing import CliRunner

    from quantlab.cli import app

    state, gateway, key = env
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    base = [
        "data",
        "fetch",
        "--start",
        START,
        "--end",
        END,
        "--store",
        str(tmp_path),
        "--gateway",
        gateway,
        "--retries",
        "1",
        "--backoff",
        "0.01",
    ]
    refused = runner.invoke(app, [*base, "--max-cost", "0.5"])
    assert refused.exit_code == 1 and "above the limit" in refused.output
    state.fail["cbbo-1m"] = [503]
    state.truncate.add("statistics")
    failed = runner.invoke(app, [*base, "--yes", "--schemas", "cbbo-1m,statistics"])
    assert failed.exit_code == 1 and "statistics" in failed.output
    state.truncate.clear()
    ok = runner.invoke(app, [*base, "--max-cost", "100"])
    assert ok.exit_code == 0, ok.output
    assert "downloaded" in ok.output
    # The client really sent the key (basic auth) ...
    assert all(auth for _, _, auth in state.seen)
    # ... and it never shows up anywhere we produce text.
    out, err = capfd.readouterr()
    text = "\n".join(
        [refused.output, failed.output, ok.output, caplog.text, out, err, repr(failed.exception)]
    )
    for secret in _secret_forms(key):
        assert secret not in text
