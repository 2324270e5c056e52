"""Delivery channels: one module each, behind the interface in ``base``."""
