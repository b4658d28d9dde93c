"""A login that outlives its access token: the downloader refreshes it and carries on."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.download.helpers import check_md5s, manifest_for, run_cli, series_folders
from tests.download.site import ALICE_PASSWORD, Site, running_site
from tests.fixtures.public_data import BREAST, LUNG

LIFETIME = 1.0


@dataclass
class ShortLivedTokens:
    """Around the real app: token answers say ``expires_in=1``, and the archive enforces it.

    Access tokens older than :data:`LIFETIME` are answered 401 on the image routes
    (NBIA's and the bulk stream, which takes the same OAuth tokens),
    as a server whose tokens expire would; image answers are slowed so a run outlasts
    several tokens.
    """

    app: Any
    issued: dict[str, float] = field(default_factory=dict)
    grants: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    enforce: float = LIFETIME

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/nbia-api/oauth/token":
            await self._token(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode()
        token = header.removeprefix("Bearer ").strip()
        if scope["path"].endswith(("getImageWithMD5Hash", "/api/download/stream")):
            await asyncio.sleep(0.25)
            if token in self.issued and time.time() - self.issued[token] > self.enforce:
                self.refused += 1
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"token expired"})
                return
        await self.app(scope, receive, send)

    async def _token(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.grants[parse_qs(body.decode()).get("grant_type", ["?"])[0]] += 1
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        answer: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, replay, capture)
        data = b"".join(chunks)
        if answer.get("status") == 200:
            parsed = json.loads(data)
            parsed["expires_in"] = LIFETIME
            self.issued[parsed["access_token"]] = time.time()
            data = json.dumps(parsed).encode()
        headers = [(k, v) for k, v in answer.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": answer["status"], "headers": headers})
        await send({"type": "http.response.body", "body": data})


@pytest.fixture
def short_tokens(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[Site, ShortLivedTokens]]:
    made: list[ShortLivedTokens] = []

    def wrap(app: Any) -> ShortLivedTokens:
        made.append(ShortLivedTokens(app))
        return made[0]

    with running_site(tmp_path, sqlite_template, wrap=wrap) as site:
        yield site, made[0]


def test_login_is_refreshed_during_a_long_run(
    short_tokens: tuple[Site, ShortLivedTokens], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, tokens = short_tokens
    uids = site.catalogue.all_series(BREAST, LUNG)[:10]
    manifest = manifest_for(site, site.catalogue.all_series(LUNG)[:1], tmp_path / "m.tcia")
    header = "".join(manifest.read_text().splitlines(keepends=True)[:6])
    manifest.write_text(header + "".join(u + "\n" for u in uids))
    monkeypatch.setenv("DICOMHUB_DOWNLOAD_PASSWORD", ALICE_PASSWORD)
    dest = tmp_path / "out"
    # one series per request (NBIA's API), so the run outlasts several tokens
    result = run_cli(manifest, "--dest", dest, "-q", "-j", "1", "--user", "alice", "--nbia-only")
    assert result.exit_code == 0, result.output
    folders = series_folders(dest)
    assert set(folders) == set(uids)
    for folder in folders.values():
        check_md5s(folder)
    assert tokens.grants["password"] == 1
    assert tokens.grants["refresh_token"] >= 2


def test_wrong_password_is_a_clear_error(
    short_tokens: tuple[Site, ShortLivedTokens], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, _tokens = short_tokens
    manifest = manifest_for(site, site.catalogue.all_series(LUNG)[:1], tmp_path / "m.tcia")
    monkeypatch.setenv("DICOMHUB_DOWNLOAD_PASSWORD", "not-the-password")
    result = run_cli(manifest, "--dest", tmp_path / "out", "-q", "--user", "alice")
    assert result.exit_code == 1
    assert "the server refused the login" in " ".join(result.output.split())


def test_credential_file_as_nbia_reads_it(
    short_tokens: tuple[Site, ShortLivedTokens], tmp_path: Path
) -> None:
    site, tokens = short_tokens
    uids = site.catalogue.series[BREAST][:1]
    manifest = manifest_for(site, site.catalogue.all_series(LUNG)[:1], tmp_path / "m.tcia")
    header = "".join(manifest.read_text().splitlines(keepends=True)[:6])
    manifest.write_text(header + uids[0] + "\n")
    credentials = tmp_path / "cred.txt"
    credentials.write_text(f"userName=alice\npassWord={ALICE_PASSWORD}\n")
    result = run_cli(manifest, "--dest", tmp_path / "out", "-q", "--credentials", credentials)
    assert result.exit_code == 0, result.output
    assert set(series_folders(tmp_path / "out")) == set(uids)
    assert tokens.grants["password"] == 1


def test_token_refused_before_its_stated_expiry_is_renewed_and_retried(
    short_tokens: tuple[Site, ShortLivedTokens], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, tokens = short_tokens
    tokens.enforce = 0.3  # the server expires tokens sooner than it said
    uids = site.catalogue.all_series(BREAST, LUNG)[:8]
    manifest = manifest_for(site, site.catalogue.all_series(LUNG)[:1], tmp_path / "m.tcia")
    header = "".join(manifest.read_text().splitlines(keepends=True)[:6])
    manifest.write_text(header + "".join(u + "\n" for u in uids))
    monkeypatch.setenv("DICOMHUB_DOWNLOAD_PASSWORD", ALICE_PASSWORD)
    dest = tmp_path / "out"
    result = run_cli(manifest, "--dest", dest, "-q", "-j", "1", "--user", "alice")
    assert result.exit_code == 0, result.output
    assert tokens.refused >= 1
    assert set(series_folders(dest)) == set(uids)
