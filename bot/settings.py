"""Settings, from the environment (``EVALBOT_*``) and an optional ``evalbot.toml``.

The environment wins over the file. Each secret may instead be given as ``EVALBOT_<NAME>_FILE``
naming a file that holds it. A bad value stops start-up with a message naming the setting and
saying what is allowed (``SettingsError``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
import uuid
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as PydanticSettingsError

from bot import branding, templating
from surveys.files import write_private

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
REPORT_MIN_GROUP = 5  # EVALBOT_REPORT_MIN_GROUP's default


class SettingsError(Exception):
    """A setting that cannot be used; the message says which and what is allowed."""


class ReportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: dict[str, float] = Field(default_factory=dict)

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, value: dict[str, float]) -> dict[str, float]:
        from surveys.report.targets import TARGETS, unknown_targets

        unknown = unknown_targets(list(value))
        if unknown:
            where = "; ".join(f"{key!r}{_located(key, 'report.targets')}" for key in unknown)
            raise ValueError(f"unknown target {where}; the targets are: {', '.join(TARGETS)}")
        for key, aim in value.items():
            if aim < 0:
                raise ValueError(f"target {key!r}{_located(key, 'report.targets')} is negative")
        return value


def _located(key: str, table: str) -> str:
    """Where ``key`` of the TOML ``[table]`` is written in the config file: " (evalbot.toml,
    line 12, column 1)", or "" when it is not there (set in the environment)."""
    path = config_path()
    if path is None:
        return ""
    current = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
            continue
        name = stripped.split("=", 1)[0].strip().strip('"').strip("'")
        if current == table and "=" in stripped and name == key:
            return f" ({path}, line {number}, column {line.index(stripped[0]) + 1})"
    return ""


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
    # The staff console's Reports page: the folder it writes each quarter's report into.
    reports_dir: Path = Path("evalbot-reports")

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

    # The partnership's look and words: templates over the shipped ones, a logo, a colour.
    templates_dir: Path | None = None
    logo: Path | None = None
    brand_colour: str | None = None
    # Privacy and trust. How long a person is kept after their last session (0: until erased by
    # hand), and the proxies (addresses, CIDR ranges or "*") whose X-Forwarded-For is believed.
    retention_years: int = Field(default=6, ge=0, le=100)
    forwarded_allow_ips: str = ""
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
    # Reports (bot/report, surveys/report): the anonymous edition leaves out figures from fewer
    # people (or an agency's bookings) than this.
    report_min_group: int = Field(default=REPORT_MIN_GROUP, ge=2, le=100)
    # [report.targets] in evalbot.toml: a figure's name and the level aimed for, shown beside
    # the actual figure (surveys/report/targets.py lists the names).
    report: ReportSettings = Field(default_factory=lambda: ReportSettings())

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

    @field_validator("templates_dir")
    @classmethod
    def _a_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @field_validator("logo")
    @classmethod
    def _an_image(cls, value: Path | None) -> Path | None:
        if value is not None:
            branding.logo_type(value)  # raises ValueError saying what is wrong
        return value

    @field_validator("brand_colour")
    @classmethod
    def _readable_colour(cls, value: str | None) -> str | None:
        if value is not None:
            return branding.check_colour(value)
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str) -> str:
        return check_proxies(value)

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
    def contact_email(self) -> str | None:
        """The training team's address for people to write to: the admin's, else the Reply-To."""
        if self.admin_email:
            return self.admin_email
        return parseaddr(self.reply_to)[1] or None if self.reply_to else None

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
            # Private from its first byte: ``write_private`` creates it 600.
            write_private(path, secrets.token_urlsafe(32).encode())
        elif path.stat().st_mode & 0o077:
            path.chmod(0o600)  # made by an Evalbot that created it readable by others
        return path.read_text().strip().encode()


def check_proxies(value: str) -> str:
    """A comma-separated list of proxy addresses or networks (or ``*``), checked."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    for part in parts:
        if part == "*":
            continue
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ValueError(
                f"{part!r} is not an IP address or network; expected addresses such as "
                "10.0.0.5, networks such as 10.0.0.0/8, or *, separated by commas"
            ) from None
    return ",".join(parts)


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
    """Read and check the settings, raising ``SettingsError`` with a readable message.

    The templates' look (overrides, logo, colour) is set from them for the whole process.
    """
    values = {**_file_secrets(dict(os.environ)), **overrides}
    try:
        settings = Settings(**values)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(_toml_problem(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(
            f"Evalbot cannot start: cannot read the settings file {config_path()}: {exc}. "
            "Save it as UTF-8 text, or point EVALBOT_CONFIG at another file."
        ) from None
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None
    except PydanticSettingsError as exc:
        raise SettingsError(f"Evalbot cannot start: {exc}") from None
    templating.configure(branding.look(settings))
    return settings


def _toml_problem(exc: tomllib.TOMLDecodeError) -> str:
    """One line naming the file, line and column of a TOML syntax error, and what to do."""
    text = str(exc)
    found = re.search(r"\(at line (\d+), column (\d+)\)|\(at end of document\)", text)
    what = text[: found.start()].strip() if found else text
    if found and found.group(1):
        where = f"line {found.group(1)}, column {found.group(2)}"
    else:
        where = "at the end"
    return (
        f"Evalbot cannot start: {config_path()}, {where}: {what[:1].lower() + what[1:]}. "
        "Correct the TOML there (text values in double quotes, one `name = value` a line; "
        "see the README's settings) and run the command again."
    )


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
            problem = error["msg"].removeprefix("Value error, ")
            lines.append(f"  {name}: {problem}{shown}")
    return "\n".join(lines)
