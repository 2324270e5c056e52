"""The channels this configuration can deliver through, by ``surveys.models.Channel``."""

from __future__ import annotations

from bot.channels.base import Channel as ChannelProtocol
from bot.channels.email import MailFolderChannel, SmtpChannel
from bot.settings import Settings
from surveys.models import Channel


def email_channel(settings: Settings) -> ChannelProtocol:
    """GOV.UK Notify when it is set; else SMTP when ``EVALBOT_SMTP_HOST`` is set; else ``.eml``
    files in ``EVALBOT_MAIL_DIR``."""
    if settings.notify_email:
        from bot.channels.notify import NotifyChannel

        return NotifyChannel(settings, kind="email")
    if settings.smtp_host:
        return SmtpChannel(settings)
    return MailFolderChannel(settings)


def build_channels(settings: Settings) -> dict[Channel, ChannelProtocol]:
    """Email always; Telegram when a bot token is set; text messages when Notify's are."""
    channels: dict[Channel, ChannelProtocol] = {Channel.EMAIL: email_channel(settings)}
    if settings.telegram_token is not None:
        from bot.telegram.channel import TelegramChannel

        channels[Channel.TELEGRAM] = TelegramChannel.from_settings(settings)
    if settings.notify_sms:
        from bot.channels.notify import NotifyChannel

        channels[Channel.SMS] = NotifyChannel(settings, kind="sms")
    return channels
