"""Client ID Metadata Documents (auth_service/oauth/cimd.py) fetched from a real HTTPS server.

The server is on 127.0.0.1 with a certificate for ``localhost`` from a test CA: tests that
fetch successfully allow private addresses (as development would), and one checks that
without that setting the same document is refused before any connection is made.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from auth_service.oauth.addresses import is_public
from auth_service.oauth.cimd import (
    CimdPolicy,
    ClientDocument,
    cache_seconds,
    cimd_http_client,
    fetch_client_document,
    is_client_id_url,
)
from auth_service.oauth.client_documents import MAX_CONCURRENT_FETCHES, ClientDocuments
from auth_service.oauth.clients import Client, get_client
from auth_service.oauth.errors import InvalidClientDocument
from tests.tls import DocumentServer, LocalCA, Reply, make_local_ca

JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def documents(local_ca: LocalCA) -> Iterator[DocumentServer]:
    server = DocumentServer(local_ca).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def policy(local_ca: LocalCA) -> CimdPolicy:
    return CimdPolicy(
        allow_private=True, max_bytes=5120, timeout_seconds=2.0, ca_file=local_ca.ca_file
    )


@pytest.fixture
async def http(policy: CimdPolicy) -> AsyncIterator[httpx.AsyncClient]:
    async with cimd_http_client(policy) as client:
        yield client


def document(client_id: str, **members: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": client_id,
        "client_name": "Example Desktop",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    body.update(members)
    return {k: v for k, v in body.items() if v is not None}


def serve(server: DocumentServer, path: str, body: Any, **reply: Any) -> str:
    """Put ``body`` (JSON unless bytes) at ``path``; return the client_id URL."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    server.replies[path] = Reply(body=raw, **reply)
    return server.url(path)


async def fetch(client_id: str, http: httpx.AsyncClient, policy: CimdPolicy) -> ClientDocument:
    return await fetch_client_document(client_id, http, policy)


async def refused(client_id: str, http: httpx.AsyncClient, policy: CimdPolicy) -> str:
    with pytest.raises(InvalidClientDocument) as caught:
        await fetch_client_document(client_id, http, policy)
    assert caught.value.code == "invalid_client"
    return caught.value.description


async def test_a_document_that_names_itself_is_accepted(
    documents: DocumentServer, http: httpx.AsyncClient, policy: CimdPolicy
) -> None:
    client_id = documents.url("/ok/client.json")
    serve(documents, "/ok/client.json", document(client_id))
    before = datetime.now(UTC)
    got = await fetch(client_id, http, policy)
    assert got.client_id == client_id
    assert got.client_name == "Example Desktop"
    assert got.redirect_uris == ("http://127.0.0.1/callback",)
    assert got.grant_types == ("authorization_code", "refresh_token")
    assert got.metadata == document(client_id)
    # Nothing said about caching: the default five minutes.
    assert 299 <= (got.expires_at - before).total_seconds() <= 301
    # The request went to the address we resolved, under the name of the URL.
    assert documents.hosts[-1] == f"localhost:{documents.port}"


async def test_a_document_naming_another_client_is_refused(
    documents: DocumentServer, http: httpx.AsyncClient, policy: CimdPolicy
) -> None:
    client_id = documents.url("/mismatch/client.json")
    serve(documents, "/mismatch/client.json", document(client_id + "/"))
    assert "is not the URL it was fetched from" in await refused(client_id, http, policy)
    # The draft compares as strings: a different spelling of the same URL is another client.
    spelled = documents.url("/mismatch/Client.json")
    serve(documents, "/mismatch/Client.json", document(client_id))
    assert "is not the URL it was fetched from" in await refused(spelled, http, policy)


async def test_a_redirect_is_not_followed(
    documents: DocumentServer, http: httpx.AsyncClient, policy: CimdPolicy
) -> None:
    target = documents.url("/redirect/target.json")
    serve(documents, "/redirect/target.json", document(documents.url("/redirect/client.json")))
    client_id = serve(
        documents,
        "/redirect/client.json",
        b"",
        status=302,
        headers={"Location": target, "Content-Type": "application/json"},
    )
    assert "answered 302; redirects are not followed" in await refused(client_id, http, policy)
    assert documents.hits.get("/redirect/target.json") is None


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
async def test_a_document_over_the_size_limit_is_refused(
    documents: DocumentServer, http: httpx.AsyncClient, policy: CimdPolicy, declared: bool
) -> None:
    path = f"/big/{declared}.json"
    client_id = documents.url(path)
    body = json.dumps(document(client_id, padding="x" * 6000)).encode()
    # Without a Content-Length the reader must count what arrives and stop in time.
    serve(documents, path, body, content_length=declared)
    assert "larger than 5120 bytes" in await refused(client_id, http, policy)


async def test_a_slow_document_is_abandoned_within_the_total_time_limit(
    documents: DocumentServer, http: httpx.AsyncClient, local_ca: LocalCA
) -> None:
    # Each byte arrives well within any read timeout; the whole takes far longer than allowed.
    client_id = documents.url("/slow/client.json")
    serve(documents, "/slow/client.json", document(client_id), trickle=0.05)
    policy = CimdPolicy(allow_private=True, timeout_seconds=1.0, ca_file=local_ca.ca_file)
    started = time.monotonic()
    assert "no answer within 1 s" in await refused(client_id, http, policy)
    assert time.monotonic() - started < 2.0


async def test_a_private_address_is_refused_unless_allowed(
    documents: DocumentServer, http: httpx.AsyncClient, local_ca: LocalCA
) -> None:
    client_id = documents.url("/private/client.json")
    serve(documents, "/private/client.json", document(client_id))
    strict = CimdPolicy(allow_private=False, ca_file=local_ca.ca_file)
    assert "non-public address 127.0.0.1" in await refused(client_id, http, strict)
    literal = documents.url("/private/client.json", host="127.0.0.1")
    assert "non-public address 127.0.0.1" in await refused(literal, http, strict)
    assert documents.hits.get("/private/client.json") is None
    allowed = CimdPolicy(allow_private=True, ca_file=local_ca.ca_file)
    assert (await fetch(client_id, http, allowed)).client_id == client_id


async def test_the_certificate_is_checked_against_the_name(
    documents: DocumentServer, http: httpx.AsyncClient, policy: CimdPolicy, tmp_path: Path
) -> None:
    client_id = documents.url("/tls/client.json")
    serve(documents, "/tls/client.json", document(client_id))
    # We connect by address, yet the certificate (for localhost only) must match the name:
    # the same server reached as 127.0.0.1 is not trusted.
    by_address = documents.url("/tls/client.json", host="127.0.0.1")
    serve(documents, "/tls/client.json", document(by_address))
    assert "fetch failed" in await refused(by_address, http, policy)
    # And a certificate from a CA we were not told to trust is refused.
    other = CimdPolicy(allow_private=True, ca_file=make_local_ca(tmp_path).ca_file)
    async with cimd_http_client(other) as untrusting:
        serve(documents, "/tls/client.json", document(client_id))
        assert "fetch failed" in await refused(client_id, untrusting, other)


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"client_secret": "s3cr3t"}, "must not contain client_secret"),
        ({"client_secret_expires_at": 0}, "must not contain client_secret_expires_at"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "must be none"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "must be none"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "http redirect URI must be on"),
        ({"redirect_uris": ["https://app.example/cb#x"]}, "must not have a fragment"),
        ({"redirect_uris": []}, "redirect_uris must list 1 to 10"),
        ({"redirect_uris": None}, "redirect_uris must list 1 to 10"),
        ({"grant_types": ["client_credentials"]}, "grant_types must be"),
        ({"response_types": ["token"]}, "response_types must be"),
        ({"client_name": "x" * 101}, "client_name is not 1-100 chars"),
    ],
)
async def test_a_document_we_cannot_use_is_refused(
    documents: DocumentServer,
    http: httpx.AsyncClient,
    policy: CimdPolicy,
    members: dict[str, Any],
    reason: str,
) -> None:
    path = f"/bad/{abs(hash(json.dumps(members)))}.json"
    client_id = documents.url(path)
    serve(documents, path, document(client_id, **members))
    assert reason in await refused(client_id, http, policy)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"not json", "application/json", 200, "is not JSON"),
        (b"[1, 2]", "application/json", 200, "not a JSON object"),
        (b"{}", "text/html", 200, "content-type is not application/json"),
        (b"{}", "application/json", 404, "answered 404, not 200"),
    ],
)
async def test_an_answer_that_is_not_a_document_is_refused(
    documents: DocumentServer,
    http: httpx.AsyncClient,
    policy: CimdPolicy,
    body: bytes,
    content_type: str,
    status: int,
    reason: str,
) -> None:
    path = f"/answer/{status}/{content_type.replace('/', '-')}/{len(body)}.json"
    client_id = serve(documents, path, body, status=status, headers={"Content-Type": content_type})
    assert reason in await refused(client_id, http, policy)


async def test_a_compressed_document_is_refused_and_identity_is_asked(
    documents: DocumentServer, http: httpx.AsyncClient, policy: CimdPolicy
) -> None:
    client_id = documents.url("/gzip/client.json")
    body = gzip.compress(json.dumps(document(client_id)).encode())
    headers = JSON_HEADERS | {"Content-Encoding": "gzip"}
    serve(documents, "/gzip/client.json", body, headers=headers)
    assert "content-encoding gzip; identity was asked" in await refused(client_id, http, policy)
    assert documents.encodings[-1] == "identity"


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [
        ("https://app.example", "must have a path"),
        ("https://app.example/", "must have a path"),
        ("http://app.example/client.json", "must be https"),
        ("https://user:pw@app.example/client.json", "user info"),
        ("https://app.example/client.json#frag", "fragment"),
        ("https://app.example/a/../client.json", "dot segments"),
        ("https://app.example/a/%2e%2E/client.json", "dot segments"),
        ("https://app.example/a b", "spaces or control characters"),
        ("https://app.example:99999/client.json", "not a valid URL"),
        ("https://app.example:0/client.json", "port 0"),
        ("https://bücher.example/client.json", "must be ASCII"),
        ("https://app.example/" + "a" * 2000, "longer than 2000"),
    ],
)
async def test_a_client_id_that_is_not_a_usable_url_is_refused_before_any_fetch(
    http: httpx.AsyncClient, policy: CimdPolicy, client_id: str, reason: str
) -> None:
    assert reason in await refused(client_id, http, policy)


def test_only_https_ids_are_document_urls() -> None:
    assert is_client_id_url("https://app.example/client.json")
    assert is_client_id_url("HTTPS://app.example/client.json")
    assert not is_client_id_url("oc_2b7Q")
    assert not is_client_id_url("http://app.example/client.json")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # shared address space (carrier-grade NAT)
        ("169.254.169.254", False),  # link-local: cloud metadata services
        ("0.0.0.0", False),  # noqa: S104 - an address we test, not one we bind
        ("224.0.0.251", False),  # multicast
        ("239.1.1.1", False),
        ("240.0.0.1", False),  # reserved
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo of 127.0.0.1
        ("::ffff:93.184.215.14", True),
    ],
)
def test_which_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, 300),
        ({"Cache-Control": "max-age=600"}, 600),
        ({"Cache-Control": "public, max-age=3600"}, 3600),
        ({"Cache-Control": "max-age=5"}, 60),
        ({"Cache-Control": "max-age=999999999"}, 86_400),
        ({"Cache-Control": "no-store"}, 60),
        ({"Cache-Control": "no-cache, max-age=600"}, 60),
        ({"Cache-Control": 'max-age="900"'}, 900),
        ({"Cache-Control": "max-age=-1"}, 300),
        ({"Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}, 60),
        ({"Expires": "garbage"}, 60),
        ({"Expires": "Fri, 01 Jan 2100 00:00:00 GMT"}, 86_400),
    ],
)
def test_how_long_a_document_may_be_used(headers: dict[str, str], seconds: int) -> None:
    assert cache_seconds(httpx.Headers(headers)) == seconds


# -- the stored copy (client_documents.py) ----------------------------------------------------


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_document_is_fetched_again_only_when_its_copy_expires(
    documents: DocumentServer,
    http: httpx.AsyncClient,
    policy: CimdPolicy,
    conn: asyncpg.Connection,
) -> None:
    path = "/cached/client.json"
    client_id = documents.url(path)
    serve(
        documents,
        path,
        document(client_id),
        headers=JSON_HEADERS | {"Cache-Control": "max-age=600"},
    )
    clients = ClientDocuments(http, policy)
    first = await clients.resolve(conn, client_id)
    assert first.kind == "metadata_document"
    assert first.redirect_uris == ("http://127.0.0.1/callback",)
    assert first.token_endpoint_auth_method == "none"
    assert first.document_expires_at is not None
    assert 590 < (first.document_expires_at - datetime.now(UTC)).total_seconds() <= 600
    # Another process (a fresh ClientDocuments) uses the stored copy too.
    again = await ClientDocuments(http, policy).resolve(conn, client_id)
    assert again.redirect_uris == first.redirect_uris
    assert documents.hits[path] == 1
    # Once the copy is past its time, the document is fetched and the new one stored.
    serve(documents, path, document(client_id, redirect_uris=["https://app.example/cb"]))
    await conn.execute("UPDATE oauth_clients SET document_expires_at = now() - interval '1 second'")
    renewed = await clients.resolve(conn, client_id)
    assert renewed.redirect_uris == ("https://app.example/cb",)
    assert documents.hits[path] == 2
    stored = await get_client(conn, client_id)
    assert stored is not None and stored.redirect_uris == ("https://app.example/cb",)


async def test_a_refused_document_is_not_fetched_again_for_a_minute(
    documents: DocumentServer,
    http: httpx.AsyncClient,
    policy: CimdPolicy,
    conn: asyncpg.Connection,
) -> None:
    path = "/refused/client.json"
    client_id = serve(documents, path, b"{}", status=500)
    clients = ClientDocuments(http, policy)
    for _ in range(3):
        with pytest.raises(InvalidClientDocument, match="answered 500, not 200"):
            await clients.resolve(conn, client_id)
    assert documents.hits[path] == 1
    assert await get_client(conn, client_id) is None


async def test_an_expired_copy_whose_document_went_bad_is_refused(
    documents: DocumentServer,
    http: httpx.AsyncClient,
    policy: CimdPolicy,
    conn: asyncpg.Connection,
) -> None:
    path = "/gone-bad/client.json"
    client_id = documents.url(path)
    serve(documents, path, document(client_id))
    clients = ClientDocuments(http, policy)
    await clients.resolve(conn, client_id)
    await conn.execute("UPDATE oauth_clients SET document_expires_at = now()")
    serve(documents, path, document(client_id, client_secret="s"))
    with pytest.raises(InvalidClientDocument, match="must not contain client_secret"):
        await clients.resolve(conn, client_id)


async def test_fetches_beyond_the_cap_are_refused_at_once_not_queued(
    documents: DocumentServer, http: httpx.AsyncClient, database_url: str, local_ca: LocalCA
) -> None:
    policy = CimdPolicy(allow_private=True, timeout_seconds=3.0, ca_file=local_ca.ca_file)
    clients = ClientDocuments(http, policy)
    slow = []
    for n in range(MAX_CONCURRENT_FETCHES + 1):
        path = f"/busy/{n}.json"
        slow.append(serve(documents, path, document(documents.url(path)), trickle=0.002))
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=MAX_CONCURRENT_FETCHES + 1)
    try:

        async def resolve(client_id: str) -> Client:
            async with pool.acquire() as conn:
                return await clients.resolve(conn, client_id)

        running = [asyncio.create_task(resolve(c)) for c in slow[:-1]]
        while sum(p.startswith("/busy/") for p in documents.hits) < MAX_CONCURRENT_FETCHES:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(InvalidClientDocument, match="too many client metadata documents"):
            await resolve(slow[-1])
        assert time.monotonic() - started < 0.5
        assert [r.client_id for r in await asyncio.gather(*running)] == slow[:-1]
        # The refusal was not remembered as the document's: it is fetched once a slot is free.
        assert (await resolve(slow[-1])).client_id == slow[-1]
    finally:
        await pool.close()
