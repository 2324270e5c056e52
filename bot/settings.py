"""Settings, from the environment (``EVALBOT_*``) and an optional ``evalbot.toml``.

The environment wins over the file. Each secret may instead be given as ``EVALBOT_<NAME>_FILE``
naming a file that holds it. A bad value stops start-up with a message naming the setting and
saying what is allowed (``SettingsError``).
"""

from __future__ import annotations

import os
import secrets
import uuid
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as PydanticSettingsError

PREFIX = "EVALBOT_"
SECRETS = (
    "secret_key",
    "smtp_password",
    "telegram_token",
    "telegram_webhook_secret",
    "m365_client_secret",
    "notify_api_key",
)
CONFIG_ENV = "EVALBOT_CONFIG"


class SettingsError(Exception):
    """A setting that cannot be used; the message says which and what is allowed."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="forbid", frozen=True, env_parse_none_str="", toml_file=None
    )

    database_url: str = Field(default_factory=lambda: f"sqlite:///{Path.cwd() / 'evalbot.db'}")
    timezone: str = "Europe/London"
    partnership_name: str = "Safeguarding Children Partnership"
    admin_email: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr | None = None
    survey_definitions_dir: Path | None = None
    quarters: Literal["calendar", "financial"] = "calendar"

    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_timeout: float = Field(default=30.0, gt=0)
    smtp_connections: int = Field(default=2, ge=1, le=50)
    mail_from: str = "Evalbot <evalbot@localhost>"
    reply_to: str | None = None
    mail_dir: Path = Path("evalbot-mail")
    smtp_ca_file: Path | None = None  # a CA bundle for a relay whose certificate is private

    # The outbox dispatcher (bot/dispatcher.py).
    outbox_batch_size: int = Field(default=100, ge=1, le=5000)
    outbox_lease_seconds: float = Field(default=300.0, gt=0)
    outbox_max_attempts: int = Field(default=10, ge=1)
    outbox_backoff_seconds: float = Field(default=60.0, gt=0)
    outbox_backoff_max_seconds: float = Field(default=21600.0, gt=0)
    outbox_poll_seconds: float = Field(default=5.0, gt=0)

    # Rate limits per channel: 0 means none. A Microsoft 365 mailbox: 0.5 a second, 10000 a day.
    email_per_second: float = Field(default=0.0, ge=0)
    email_per_day: int = Field(default=0, ge=0)
    telegram_per_second: float = Field(default=30.0, ge=0)
    telegram_per_chat_per_second: float = Field(default=1.0, ge=0)
    telegram_per_day: int = Field(default=0, ge=0)

    telegram_token: SecretStr | None = None
    telegram_api_url: str | None = None
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_secret: SecretStr | None = None
    # The bot's @username for t.me deep links; asked of Telegram (getMe) at start when unset.
    telegram_bot_username: str | None = None
    # How the bot reaches the Bot API: a lean HTTP/1.1 client, or httpx (used anyway behind
    # an HTTP proxy named in HTTPS_PROXY and the like).
    telegram_transport: Literal["lean", "httpx"] = "lean"
    telegram_admins: Annotated[list[int], NoDecode] = Field(default_factory=list)
    telegram_trainers: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # Delivery faults (bot/pauses.py): the same refusal for this many different recipients in
    # a row pauses the channel rather than marking them all undeliverable (0: never).
    outbox_pause_after_same_refusals: int = Field(default=3, ge=0)

    # Delivery by Microsoft 365 without passwords (bot/channels/m365.py) and by GOV.UK Notify
    # (bot/channels/notify.py). ``smtp_auth`` comes after the M365 settings it checks.
    m365_tenant_id: str | None = None
    m365_client_id: str | None = None
    m365_client_secret: SecretStr | None = None
    m365_authority: str = "https://login.microsoftonline.com"  # Entra ID's sign-in host
    m365_ca_file: Path | None = None  # a CA bundle for a token endpoint with a private certificate
    smtp_auth: Literal["password", "oauth2"] = "password"
    notify_api_key: SecretStr | None = None
    notify_email_template_id: str | None = None
    notify_sms_template_id: str | None = None
    notify_base_url: str = "https://api.notifications.service.gov.uk"
    # Notify allows 3,000 messages a minute per service (50 a second) and a daily number set
    # per service (often 250,000 emails and 250,000 texts); 0 is no daily limit.
    notify_per_second: float = Field(default=50.0, ge=0)
    notify_email_per_day: int = Field(default=0, ge=0)
    notify_sms_per_day: int = Field(default=0, ge=0)
    notify_threads: int = Field(default=8, ge=1, le=64)  # requests in flight to Notify

    # The partnership's policy (timings, sending window, cut-off, charges), checked by
    # ``schedules.policy``; see the README for its keys.
    policy: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from exc
        return value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("smtp_auth")
    @classmethod
    def _oauth2_needs_the_app(cls, value: str, info: ValidationInfo) -> str:
        if value == "oauth2":
            missing = [
                PREFIX + name.upper()
                for name in ("m365_tenant_id", "m365_client_id", "m365_client_secret")
                if not info.data.get(name)
            ]
            if not info.data.get("smtp_username"):
                missing.append("EVALBOT_SMTP_USERNAME (the mailbox that sends)")
            if missing:
                raise ValueError("oauth2 needs " + ", ".join(missing))
        return value

    @field_validator("notify_api_key")
    @classmethod
    def _notify_key(cls, value: SecretStr | None) -> SecretStr | None:
        # A Notify API key is "<key name>-<service id>-<secret>", both ids UUIDs.
        if value is not None:
            key = value.get_secret_value().strip()
            try:
                uuid.UUID(key[-73:-37])
                uuid.UUID(key[-36:])
            except ValueError:
                raise ValueError(
                    "must be a GOV.UK Notify API key: its name, the service id and the secret, "
                    "joined by hyphens (copy it whole from Notify's API integration page)"
                ) from None
            return SecretStr(key)
        return value

    @field_validator("notify_email_template_id", "notify_sms_template_id")
    @classmethod
    def _template_uuid(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                return str(uuid.UUID(value.strip()))
            except ValueError:
                raise ValueError("must be a Notify template id (a UUID)") from None
        return value

    @field_validator("telegram_admins", "telegram_trainers", mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        if isinstance(value, int):
            return [value]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return (init_settings, env_settings, toml)

    @property
    def notify_email(self) -> bool:
        """Email goes by GOV.UK Notify: its key and email template are set."""
        return self.notify_api_key is not None and self.notify_email_template_id is not None

    @property
    def notify_sms(self) -> bool:
        """Text messages can go, by GOV.UK Notify: its key and text template are set."""
        return self.notify_api_key is not None and self.notify_sms_template_id is not None

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def secret(self) -> bytes:
        """The key behind every personal link; generated once into a file when not set."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = Path(".evalbot-secret")
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()


def config_path() -> Path | None:
    path = Path(os.environ.get(CONFIG_ENV, "evalbot.toml"))
    return path if path.is_file() else None


def _file_secrets(environ: dict[str, str]) -> dict[str, str]:
    """Secrets given as ``EVALBOT_<NAME>_FILE``: the named file's content, trimmed."""
    found: dict[str, str] = {}
    for name in SECRETS:
        variable = f"{PREFIX}{name.upper()}_FILE"
        if variable not in environ:
            continue
        if f"{PREFIX}{name.upper()}" in environ:
            raise SettingsError(f"{variable}: give either it or {PREFIX}{name.upper()}, not both")
        try:
            found[name] = Path(environ[variable]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{variable}: cannot read {environ[variable]!r}: {exc}") from exc
    return found


def load_settings(**overrides: Any) -> Settings:
    """Read and check the settings, raising ``SettingsError`` with a readable message."""
    values = {**_file_secrets(dict(os.environ)), **overrides}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None
    except PydanticSettingsError as exc:
        raise SettingsError(f"Evalbot cannot start: {exc}") from None


def describe(exc: ValidationError) -> str:
    lines = ["Evalbot cannot start: a setting is not valid."]
    source = config_path()
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        name = PREFIX + location[0].upper() if location else "?"
        if len(location) > 1:
            name += " (" + ".".join(location[1:]) + ")"
        given = error.get("input")
        shown = "" if location and location[0] in SECRETS else f" (given: {given!r})"
        if error["type"] == "extra_forbidden":
            where = f" in {source}" if source else ""
            lines.append(f"  {name}: not a setting Evalbot knows{where}")
        else:
            lines.append(f"  {name}: {error['msg']}{shown}")
    return "\n".join(lines)
