"""Evalbot's Telegram bot: the outbox channel, the handlers, linking, and running the bot.

- ``channel``: the outbox's Telegram channel (and its ``Pacer`` for Telegram's rate limits);
- ``app``: the python-telegram-bot ``Application`` with every handler; ``runtime``: its start and
  stop inside ``evalbot run``, by polling or webhook (``bot.web.telegram_hook``);
- handlers, one module per concern: ``linking`` (/start, /stop, /prefer), ``surveys`` (/surveys
  and answering in chat), ``bookings`` (/bookings, Cancel), ``register`` (/register for
  trainers), ``admin`` (/stats, /remind), ``commands`` (/help), ``errors`` (the error handler);
- shared pieces: ``context`` (settings, database, clock, roles), ``replies`` (sending a
  handler's answer), ``keyboards`` (buttons and their 64-byte ``callback_data``), ``html``
  (escaping and splitting HTML parse-mode text), ``transport`` (a lean HTTP client for PTB).
"""
