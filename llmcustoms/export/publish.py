"""Publishing a verified export to the Hugging Face Hub (``export --push-to-hub OWNER/NAME``).

``plan_publish`` lists what would go where (nothing is sent); ``publish`` creates the repository
(``exist_ok``) and uploads the folder with ``huggingface_hub``'s ``upload_folder``. The token comes
from ``HF_TOKEN`` or the user's saved login; it is handed to ``huggingface_hub`` and never printed,
logged or written. Every fault the user can meet — no token, a refused token, a name that belongs to
someone else, a dropped connection — is one sentence (a ``PublishError`` or an ``InputError``).

The endpoint is read from ``HF_ENDPOINT`` at call time (``huggingface_hub.constants`` reads it once,
at import), so a test can point it at a server on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from llmcustoms.errors import InputError, LLMCustomsError
from llmcustoms.export.staging import MARKER, not_an_export, read_marker

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://huggingface.co"
#: OWNER/NAME as the Hub accepts it: letters, digits, "-", "_", "."; no "--" or ".." and no leading/trailing "-" or ".".
_REPO_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")


class PublishError(LLMCustomsError):
    """The upload to the Hub failed for a reason that is not bad input (a dropped connection, a server error)."""


@dataclass(frozen=True)
class PublishPlan:
    """What an upload would send: ``files`` as (path in the repository, bytes), and where."""

    folder: Path
    repo_id: str
    endpoint: str
    private: bool
    files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """The size of every file to upload, together."""
        return sum(size for _, size in self.files)

    @property
    def url(self) -> str:
        """The repository's page: ``<endpoint>/<owner>/<name>``."""
        return f"{self.endpoint}/{self.repo_id}"

    def describe(self) -> str:
        """The lines shown before asking: each file with its size, the total, the address and the visibility."""
        visibility = "private (only you and your organisation see it)" if self.private else "public (anyone can see it)"
        lines = [f"Upload {len(self.files)} files, {_size(self.total_bytes)}, from {self.folder} "
                 f"to {self.url} ({visibility}):"]
        lines += [f"  {name}  {_size(size)}" for name, size in self.files]
        return "\n".join(lines)


@dataclass(frozen=True)
class PublishResult:
    """A finished upload: where it went, the commit, and how many files were sent or already there."""

    repo_id: str
    url: str
    private: bool
    commit_url: str
    files: int
    total_bytes: int
    user: str | None = None


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def hub_endpoint() -> str:
    """The Hub's address: ``HF_ENDPOINT`` when set, else https://huggingface.co (no trailing slash)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` unchanged when it reads OWNER/NAME as the Hub accepts it; InputError otherwise."""
    if not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise InputError(f"--push-to-hub takes OWNER/NAME (letters, digits, '-', '_', '.'), e.g. "
                         f"your-name/my-model, not {repo_id!r}.")
    return repo_id


def find_token() -> str:
    """The token from ``HF_TOKEN``, else from the saved login (``hf auth login``); InputError when there is none."""
    from huggingface_hub import get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise InputError("Publishing needs a Hugging Face token with write access: set HF_TOKEN or run "
                         "`hf auth login`, then rerun.")
    return token


def reusable_export(folder: Path, fmt: str, quant: str | None) -> bool:
    """True when ``folder`` already holds a complete, verified export of this format (and quant).

    Exports are renamed into place only after they verified, so an intact marker listing exactly the
    folder's files means a verified export: a rerun after a dropped upload publishes it as it is.
    """
    marker = read_marker(folder)
    if marker is None or not_an_export(folder) is not None:
        return False
    return bool(marker.get("format") == fmt and (fmt != "gguf" or marker.get("quant") == quant))


def plan_publish(folder: str | os.PathLike[str], repo_id: str, private: bool = False) -> PublishPlan:
    """What ``publish`` would send from ``folder`` to ``repo_id``; sends nothing.

    The export marker stays home: it records local paths (the run folder) that are nobody else's business.
    """
    root = Path(folder)
    files = sorted((p.relative_to(root).as_posix(), p.stat().st_size)
                   for p in root.rglob("*") if p.is_file() and p.name != MARKER)
    if not files:
        raise InputError(f"{root} holds no files to publish.")
    return PublishPlan(folder=root, repo_id=check_repo_id(repo_id), endpoint=hub_endpoint(), private=private,
                       files=files)


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def check_token(token: str, repo_id: str) -> str | None:
    """The user name the Hub gives ``token`` (whoami); the one-sentence error when it refuses it.

    Called before the export, so a wrong token is said in a second, not after minutes of merging.
    Only the token travels (in the Authorization header), nothing of the export.
    """
    plan = PublishPlan(folder=Path("."), repo_id=repo_id, endpoint=hub_endpoint(), private=False)
    return _calling_the_hub(plan, None, "checking the token", lambda: _whoami(plan, token))


def _whoami(plan: PublishPlan, token: str) -> str | None:
    from huggingface_hub import HfApi

    who: dict[str, Any] = HfApi(endpoint=plan.endpoint, token=token).whoami()
    return str(who["name"]) if who.get("name") else None


def publish(plan: PublishPlan, token: str, user: str | None = None) -> PublishResult:
    """Create ``plan.repo_id`` (kept if it exists) and upload ``plan.folder`` into it as one commit.

    ``user`` is what ``check_token`` returned (asked again when None). huggingface_hub retries a
    dropped request itself (five times, backing off); files the Hub already holds unchanged are
    skipped (the preupload answer carries their ids), so running it again sends only what is missing.
    """
    from huggingface_hub import HfApi

    if user is None:
        user = check_token(token, plan.repo_id)
    api = HfApi(endpoint=plan.endpoint, token=token)
    _calling_the_hub(plan, user, "creating the repository",
                     lambda: api.create_repo(plan.repo_id, private=plan.private, exist_ok=True, repo_type="model"))
    commit = _calling_the_hub(
        plan, user, "uploading",
        lambda: api.upload_folder(folder_path=plan.folder, repo_id=plan.repo_id, repo_type="model",
                                  ignore_patterns=[MARKER],
                                  commit_message=f"Upload {plan.folder.name} exported by llmcustoms"))
    return PublishResult(repo_id=plan.repo_id, url=plan.url, private=plan.private, commit_url=str(commit),
                         files=len(plan.files), total_bytes=plan.total_bytes, user=user)


def _calling_the_hub(plan: PublishPlan, user: str | None, stage: str, call: Callable[[], T]) -> T:
    """``call()``, with the Hub's HTTP errors and broken connections turned into one sentence each."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return call()
    except HfHubHTTPError as error:
        raise _http_fault(error, plan, user, stage) from None
    except (httpx2.TransportError, ConnectionError, TimeoutError) as error:
        raise PublishError(
            f"The connection to {plan.endpoint} broke while {stage} ({type(error).__name__}): run the same "
            f"command again to resume — files the Hub already holds are not sent again."
        ) from None


def _http_fault(error: BaseException, plan: PublishPlan, user: str | None, stage: str) -> LLMCustomsError:
    """One sentence for an HTTP error from the Hub (the token is never part of it)."""
    status = _status(error)
    owner = plan.repo_id.split("/", 1)[0]
    if status == 401:
        return InputError(f"{plan.endpoint} refused the Hugging Face token (401 while {stage}): it is wrong, "
                          f"expired or revoked; set HF_TOKEN to a valid token with write access or run "
                          f"`hf auth login` again.")
    if status in (403, 409):
        who = f"the account {user}" if user else "your token"
        mine = f" (e.g. {user}/{plan.repo_id.split('/', 1)[1]})" if user and user != owner else ""
        return InputError(f"{plan.repo_id} cannot be written with {who} ({status} while {stage}): the name "
                          f"belongs to someone else or the token is read-only; choose a name under an account "
                          f"you can write to{mine}, or use a token with write access.")
    return PublishError(f"{plan.endpoint} answered {status or 'an error'} while {stage} for {plan.repo_id}; "
                        f"run the same command again later — files the Hub already holds are not sent again.")
