"""A small HTTP server on 127.0.0.1 that speaks enough of the Hugging Face Hub's download protocol.

Serves one repository from a local folder: ``/api/models/<repo>/revision/<rev>`` (the file list)
and ``/<repo>/resolve/<rev>/<file>`` (HEAD and GET, with Range). Faults can be injected per file:
``faults[filename] = ["drop", "500", "truncate", "wrong_size"]`` — each entry is used once, in order.

It also takes uploads the way ``huggingface_hub``'s ``upload_folder`` sends small files:
``/api/whoami-v2``, ``/api/repos/create``, ``/api/validate-yaml``, ``/api/models/<repo>/preupload/<rev>``
(every file "regular", with the git oid of the copy it already holds) and ``/api/models/<repo>/commit/<rev>``
(NDJSON, files inlined as base64), written into the served folder. ``token`` is the one token it accepts
(401 otherwise), ``user`` its owner and ``writable`` the owners that token may write to (403 otherwise);
``faults["commit"] = ["drop"]`` closes the connection of the next commit without an answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStub:
    """Start with ``with HubStub(repo_id, folder) as hub: hub.url``."""

    def __init__(self, repo_id: str, folder: Path) -> None:
        self.repo_id = repo_id
        self.folder = Path(folder)
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.requests: list[tuple[str, str]] = []
        # Upload side: the accepted token (None: any), its user, the owners it may write to, what came in.
        self.token: str | None = None
        self.user = "alice"
        self.writable: set[str] = {"alice"}
        self.created: list[dict] = []
        self.commits: list[list[dict]] = []
        self.authorizations: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint to put in HF_ENDPOINT."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self) -> list[Path]:
        """Every file of the served repository."""
        return sorted(p for p in self.folder.rglob("*") if p.is_file())

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send_json(self, data, status=200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _not_found(self) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                self._serve(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(head=True)

            def do_POST(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                hub.requests.append((self.command, path))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization", "")
                hub.authorizations.append(auth)
                if hub.token is not None and auth != f"Bearer {hub.token}":
                    self._send_json({"error": "Invalid credentials in Authorization header"}, 401)
                    return
                if path == "/api/validate-yaml":
                    self._send_json({"errors": [], "warnings": []})
                    return
                if path == "/api/repos/create":
                    request = json.loads(body)
                    if request.get("organization") not in hub.writable:
                        self._send_json({"error": "You don't have the rights to create a model under this namespace"},
                                        403)
                        return
                    hub.created.append(request)
                    self._send_json({"url": f"{hub.url}/{request['organization']}/{request['name']}"})
                    return
                api_prefix = f"/api/models/{hub.repo_id}/"
                if not path.startswith(api_prefix):
                    self._not_found()
                    return
                if hub.repo_id.split("/")[0] not in hub.writable:
                    self._send_json({"error": "You don't have the rights to write to this repository"}, 403)
                    return
                action = path[len(api_prefix):].split("/")[0]
                if action == "preupload":
                    files = []
                    for entry in json.loads(body)["files"]:
                        held = hub.folder / entry["path"]
                        oid = _git_oid(held.read_bytes()) if held.is_file() else None
                        files.append({"path": entry["path"], "uploadMode": "regular", "shouldIgnore": False,
                                      "oid": oid})
                    self._send_json({"files": files})
                    return
                if action == "commit":
                    if hub.faults["commit"] and hub.faults["commit"].pop(0) == "drop":
                        self.close_connection = True  # no answer at all: the client sees a broken connection
                        return
                    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                    hub.commits.append(lines)
                    for line in lines:
                        if line["key"] == "file":
                            target = hub.folder / line["value"]["path"]
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(base64.b64decode(line["value"]["content"]))
                    self._send_json({"commitUrl": f"{hub.url}/{hub.repo_id}/commit/{COMMIT}", "commitOid": COMMIT,
                                     "pullRequestUrl": None})
                    return
                self._not_found()

            def _serve(self, head: bool) -> None:
                path = self.path.split("?")[0]
                hub.requests.append((self.command, path))
                if path == "/api/whoami-v2":
                    auth = self.headers.get("Authorization", "")
                    hub.authorizations.append(auth)
                    if hub.token is not None and auth != f"Bearer {hub.token}":
                        self._send_json({"error": "Invalid credentials in Authorization header"}, 401)
                    else:
                        self._send_json({"type": "user", "name": hub.user, "orgs": [],
                                         "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
                    return
                api_prefix = f"/api/models/{hub.repo_id}"
                if path.startswith(api_prefix + "/tree/"):
                    entries = []
                    for p in hub.files():
                        data = p.read_bytes()
                        entry = {"type": "file", "path": str(p.relative_to(hub.folder)), "size": len(data),
                                 "oid": hashlib.sha1(data).hexdigest()}
                        if p.suffix == ".safetensors":
                            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                            "pointerSize": 134}
                        entries.append(entry)
                    self._send_json(entries)
                    return
                if path.startswith(api_prefix):
                    siblings = [{"rfilename": str(p.relative_to(hub.folder))} for p in hub.files()]
                    self._send_json({"id": hub.repo_id, "sha": COMMIT, "siblings": siblings, "private": False})
                    return
                prefix = f"/{hub.repo_id}/resolve/"
                if not path.startswith(prefix):
                    self._not_found()
                    return
                name = path[len(prefix):].split("/", 1)[1]
                file = hub.folder / name
                if not file.is_file():
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = file.read_bytes()
                etag = hashlib.sha256(data).hexdigest()
                fault = hub.faults[name].pop(0) if (hub.faults[name] and not head) else None
                if fault == "500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{etag}"')
                if name.endswith(".safetensors"):
                    self.send_header("X-Linked-Etag", f'"{etag}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                declared = len(body) + (7 if fault == "wrong_size" else 0)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                if head:
                    return
                if fault in ("drop", "truncate"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)
                if fault == "wrong_size":
                    self.close_connection = True

        return Handler


def _git_oid(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub reports for a regular file it holds)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
