"""The OAuth 2.1 authorization server that MCP clients find from validate's 401.

::

    client ──POST /register──────────────▶ clients.py      (RFC 7591; or a metadata document)
    client ──GET /authorize──────────────▶ flows.py        (client, redirect URI, PKCE, resource)
    person ──/login, consent page────────▶ consent.py      (remembered per user, client, resource)
    client ◀─302 redirect_uri?code&iss─── codes.py        (60 s, single use, hash stored)
    client ──POST /token─────────────────▶ grants.py       (an OAuth session: access + refresh)
    client ──Bearer─▶ proxy ──validate───▶ the token's aud must be the resource it is used on

Domain modules only: no HTTP framework here (``routes/oauth*.py`` translate). Resources and
URLs are pure (``resources.py``, ``urls.py``); the rest take a database connection.
"""
