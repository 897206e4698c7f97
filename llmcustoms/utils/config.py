"""Configuration: defaults < ``~/.llmcustoms/.env`` < ``./.env`` < environment < explicit choices.

``Settings.load()`` resolves them once into a frozen, typed ``Settings``; the entries (the CLI's ``main``,
the TUI, ``FineTuner``, a detached worker's ``run_training``) call it once and pass the object down.
``Config().load_env_config()`` (the seed's API) is the same resolution as a plain dict with typed values.
Nothing here writes to ``os.environ``; secrets stay in the returned object only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from llmcustoms.errors import ConfigError
from llmcustoms.paths import home_dir, read_dotenv

#: Every key LLMCustoms reads, with its default (None: unset).
DEFAULTS: dict[str, Any] = {
    "GROQ_API_KEY": None,
    "GROQ_BASE_URL": "https://api.groq.com",
    "GROQ_MODEL": "llama-3.3-70b-versatile",
    "GROQ_TIMEOUT": None,  # seconds to wait for one Q&A reply (llmcustoms.qa.groq.REQUEST_TIMEOUT_S)
    "DEFAULT_MODEL": "auto",
    "DEFAULT_PRESET": "quality",
    "OUTPUT_DIR": None,
    "CACHE_DIR": None,
    "LOG_LEVEL": "INFO",
    "MAX_VRAM_GB": None,
    "FORCE_CPU": False,
    "MAX_STEPS": None,  # caps training steps when no --max-steps is given (a quick first try)
    "REPORT_TO": None,  # experiment tracker: tensorboard | wandb | mlflow | none (None: tensorboard if installed)
}

SECRET_KEYS = frozenset({"GROQ_API_KEY"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PRESET_NAMES = ("highspeed", "quality", "bestaccuracy")
#: REPORT_TO's values (llmcustoms.training.tracking checks the package is installed when a run starts).
REPORT_TO_NAMES = ("tensorboard", "wandb", "mlflow", "none")


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key} must be true or false, not {value!r}.")


def _parse_vram(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"MAX_VRAM_GB must be a number of gigabytes or 'auto', not {value!r}.") from None
    if number <= 0:
        raise ConfigError(f"MAX_VRAM_GB must be more than 0, not {value!r}.")
    return number


def _parse_timeout(value: Any) -> float | None:
    """GROQ_TIMEOUT as seconds (None: unset), refused at start-up like every other bad setting."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"GROQ_TIMEOUT must be a number of seconds, not {value!r}.") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"GROQ_TIMEOUT must be a number of seconds above 0, not {value!r}.")
    return seconds


#: More optimizer steps than any run needs (a typo guard: 999999999999 would run for ever).
MAX_STEPS_LIMIT = 1_000_000


def _parse_steps(value: Any, name: str = "MAX_STEPS") -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}.") from None
    if number <= 0:
        raise ConfigError(f"{name} must be above 0, not {value!r}.")
    if number > MAX_STEPS_LIMIT:
        raise ConfigError(f"{name} must be at most {MAX_STEPS_LIMIT:,}, not {value!r}.")
    return number


def check_max_steps(value: Any, name: str = "--max-steps") -> int | None:
    """``value`` as a step count (None stays None); ConfigError with a sentence when it is not 1…1,000,000."""
    return _parse_steps(value, name)


def _read_dotenv(path: Path) -> dict[str, str]:
    """The LLMCustoms settings written in the .env file at ``path`` (other keys ignored)."""
    return {k: v for k, v in read_dotenv(path).items() if k in DEFAULTS}


class Config:
    """Resolves settings in DESIGN.md's order of precedence and checks them.

    The stable public methods are ``load_env_config``, ``validate_config``, ``get_default_config``
    and ``merge_configs``.
    """

    def __init__(self, cwd: str | os.PathLike[str] | None = None) -> None:
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()

    def get_default_config(self) -> dict[str, Any]:
        """The built-in defaults, before any file or environment is read."""
        return dict(DEFAULTS)

    def merge_configs(self, user_config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        """``defaults`` overridden by every key of ``user_config`` whose value is not None."""
        merged = dict(defaults)
        merged.update({k: v for k, v in user_config.items() if v is not None})
        return merged

    def load_env_config(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Settings from defaults, both .env files, the environment, then ``overrides``; typed and checked.

        The dict of ``Settings.load(overrides, cwd).to_dict()`` (one resolution, the same rules)."""
        return _resolve(self.cwd, overrides)

    def validate_config(self, config: dict[str, Any]) -> bool:
        """True when the settings are usable; raises ConfigError with the reason otherwise.

        A missing GROQ_API_KEY is not an error here: the offline fallback is used and a
        warning given where Q&A is generated.
        """
        if config.get("LOG_LEVEL", "INFO") not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {config['LOG_LEVEL']!r}.")
        preset = config.get("DEFAULT_PRESET", "quality")
        if preset not in PRESET_NAMES:
            raise ConfigError(f"DEFAULT_PRESET must be one of {', '.join(PRESET_NAMES)}, not {preset!r}.")
        base_url = config.get("GROQ_BASE_URL") or ""
        if base_url and not str(base_url).startswith(("http://", "https://")):
            raise ConfigError(f"GROQ_BASE_URL must start with http:// or https://, not {base_url!r}.")
        return True


def _merge(user_config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    merged.update({k: v for k, v in user_config.items() if v is not None})
    return merged


def _resolve(cwd: Path, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The one resolution of the settings: defaults < home .env < ./.env < environment < ``overrides``.

    Every reading of the settings (``Settings.load``, ``Config.load_env_config``) comes through here.
    """
    config = dict(DEFAULTS)
    config = _merge(_read_dotenv(home_dir() / ".env"), config)
    config = _merge(_read_dotenv(cwd / ".env"), config)
    env = {k: os.environ[k] for k in DEFAULTS if os.environ.get(k) not in (None, "")}
    config = _merge(env, config)
    config = _merge(overrides or {}, config)
    config["FORCE_CPU"] = _parse_bool("FORCE_CPU", config["FORCE_CPU"])
    config["MAX_VRAM_GB"] = _parse_vram(config["MAX_VRAM_GB"])
    config["MAX_STEPS"] = _parse_steps(config["MAX_STEPS"])
    config["GROQ_TIMEOUT"] = _parse_timeout(config["GROQ_TIMEOUT"])
    config["LOG_LEVEL"] = str(config["LOG_LEVEL"]).upper()
    config["DEFAULT_PRESET"] = str(config["DEFAULT_PRESET"]).lower()
    config["REPORT_TO"] = _parse_report_to(config["REPORT_TO"])
    Config(cwd).validate_config(config)
    return config


def _parse_report_to(value: Any) -> str | None:
    """REPORT_TO as a tracker name (None: unset), refused at start-up like every other bad setting."""
    if value is None or not str(value).strip():
        return None
    name = str(value).strip().lower()
    if name not in REPORT_TO_NAMES:
        raise ConfigError(f"REPORT_TO must be one of {', '.join(REPORT_TO_NAMES)}, not {value!r}.")
    return name


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Settings:
    """The resolved, checked settings (one attribute per key of ``DEFAULTS``, in lower case).

    Read once at an entry with ``Settings.load()`` and passed down; ``to_dict()`` is the dict
    ``Config().load_env_config()`` returns (upper-case keys), for the code that takes one.
    """

    groq_api_key: str | None = None
    groq_base_url: str = "https://api.groq.com"
    groq_model: str = "llama-3.3-70b-versatile"
    groq_timeout: str | float | None = None
    default_model: str = "auto"
    default_preset: str = "quality"
    output_dir: str | None = None
    cache_dir: str | None = None
    log_level: str = "INFO"
    max_vram_gb: float | None = None
    force_cpu: bool = False
    max_steps: int | None = None
    report_to: str | None = None

    @classmethod
    def load(cls, overrides: dict[str, Any] | None = None,
             cwd: str | os.PathLike[str] | None = None) -> Settings:
        """defaults < ``~/.llmcustoms/.env`` < ``./.env`` (of ``cwd``) < environment < ``overrides``."""
        return cls.from_dict(_resolve(Path(cwd) if cwd is not None else Path.cwd(), overrides))

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> Settings:
        """From a ``load_env_config()``-shaped dict (upper-case keys; missing keys take their defaults)."""
        values = {**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}}
        timeout = values["GROQ_TIMEOUT"]
        vram = values["MAX_VRAM_GB"]
        steps = values["MAX_STEPS"]
        return cls(
            groq_api_key=_optional_str(values["GROQ_API_KEY"]),
            groq_base_url=str(values["GROQ_BASE_URL"]),
            groq_model=str(values["GROQ_MODEL"]),
            groq_timeout=timeout if timeout is None or isinstance(timeout, (str, float)) else float(timeout),
            default_model=str(values["DEFAULT_MODEL"]),
            default_preset=str(values["DEFAULT_PRESET"]),
            output_dir=_optional_str(values["OUTPUT_DIR"]),
            cache_dir=_optional_str(values["CACHE_DIR"]),
            log_level=str(values["LOG_LEVEL"]),
            max_vram_gb=None if vram is None else float(vram),
            force_cpu=bool(values["FORCE_CPU"]),
            max_steps=None if steps is None else int(steps),
            report_to=_optional_str(values["REPORT_TO"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``Config().load_env_config()`` dict: upper-case keys, in ``DEFAULTS``' order."""
        return {f.name.upper(): getattr(self, f.name) for f in fields(self)}

    def __repr__(self) -> str:  # the key never reaches a log or a traceback
        shown = ", ".join(f"{k}={v!r}" for k, v in redact(self.to_dict()).items())
        return f"Settings({shown})"


def as_settings(settings: Settings | dict[str, Any] | None) -> Settings:
    """``settings`` as a ``Settings``: a dict (``load_env_config()``-shaped) is converted, None is read now."""
    if settings is None:
        return Settings.load()
    if isinstance(settings, Settings):
        return settings
    return Settings.from_dict(settings)


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` safe to log or write: secrets replaced by 'set' / None."""
    return {k: ("set" if v else None) if k in SECRET_KEYS else v for k, v in config.items()}
