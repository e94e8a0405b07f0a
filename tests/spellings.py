"""Spellings of request paths that the tests share."""

from __future__ import annotations

# Paths that nginx forwards as they came ($request_uri) and an upstream could read as
# another path than the one the rules saw (issue 16, C1): each is refused with 400.
NOT_CANONICAL = [
    "/admin/..;/public/x",
    "/admin%2f..%2fpublic/x",
    "/admin%2F..%2Fpublic/x",
    "/admin/x/..%5c..%5cpublic/x",
    "/admin//../public/x",
    "/admin/;/../public/x",
    "/admin/../public/x",
    "/public/../admin/users",
    "/admin/./users",
    "/admin/users/.",
    "/admin/users/..",
    "/..",
    "/.",
    "/admin/%2e%2e/public",
    "/admin/%2E%2E/public",
    "/admin/.%2E/public",
    "/admin/%2e./public",
    "/admin/%2e/users",
    "/%61dmin/users",
    "/ADMIN%2Dusers",
    "/%7Euser",
    "/admin%5Cusers",
    "/admin\\users",
    "/admin\\..\\public",
    "/admin;jsessionid=abc/users",
    "/admin/users;x=1",
    "/admin%3Busers",
    "/admin%3busers",
    "/admin//users",
    "//admin/users",
    "/admin/users//",
    "/admin%252e%252e/public",
    "/admin%3F/public",
    "/admin%23/public",
    "/admin#/../public",
]
