"""A small HTTP server on 127.0.0.1 that speaks enough of the Hugging Face Hub's download protocol.

Serves one repository from a local folder: ``/api/models/<repo>/revision/<rev>`` (the file list)
and ``/<repo>/resolve/<rev>/<file>`` (HEAD and GET, with Range). Faults can be injected per file:
``faults[filename] = ["drop", "500", "truncate", "wrong_size"]`` — each entry is used once, in order.
"""

from __future__ import annotations

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

            def _serve(self, head: bool) -> None:
                path = self.path.split("?")[0]
                hub.requests.append((self.command, path))
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
