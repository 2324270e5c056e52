"""The outside world: email, Telegram, the web form, the command line and the wiring."""
