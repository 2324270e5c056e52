"""The web app: survey form, personal links (cancel, nominate, unsubscribe), Telegram webhook."""
