"""The partnership's logo and colour: checked once at start-up, then given to the templates."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import TYPE_CHECKING

from bot.templating import DEFAULT_BRAND_COLOUR, LOGO_PATH, Look

if TYPE_CHECKING:
    from bot.settings import Settings

MIN_CONTRAST = 4.5  # WCAG 2.2 AA for normal text: white text on the brand colour
_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def logo_type(path: Path) -> str:
    """The logo's media type, or ``ValueError`` saying why it cannot be shown."""
    try:
        head = path.read_bytes()[:4096]
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if head.startswith(PNG_SIGNATURE):
        return "image/png"
    if b"<svg" in head:
        from xml.etree import ElementTree  # loaded when first needed: few logos are SVG

        try:
            root = ElementTree.fromstring(path.read_bytes())
        except ElementTree.ParseError as exc:
            raise ValueError(f"{path} is not a well-formed SVG: {exc}") from None
        if root.tag.rsplit("}", 1)[-1] == "svg":
            return "image/svg+xml"
    raise ValueError(f"{path} is not a PNG or SVG image")


def contrast_with_white(colour: str) -> float:
    """WCAG contrast ratio of white text on ``colour`` (``#rrggbb``)."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


def check_colour(value: str) -> str:
    """``value`` as ``#rrggbb``, or ``ValueError`` when it is not a colour white text reads on."""
    match = _HEX.fullmatch(value.strip())
    if not match:
        raise ValueError("expected a colour like #1d4f91")
    digits = match.group(1).lower()
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    colour = f"#{digits}"
    ratio = contrast_with_white(colour)
    if ratio < MIN_CONTRAST:
        raise ValueError(
            f"white text on {colour} has a contrast of {ratio:.2f}:1; at least "
            f"{MIN_CONTRAST}:1 is needed to be readable (WCAG AA): choose a darker colour"
        )
    return colour


def look(settings: Settings) -> Look:
    """The templates' look for these settings."""
    return Look(
        overrides=settings.templates_dir.resolve() if settings.templates_dir else None,
        brand_colour=settings.brand_colour or DEFAULT_BRAND_COLOUR,
        logo_url=settings.public_url + LOGO_PATH if settings.logo else None,
        logo_alt=settings.partnership_name,
        logo_data=_data_uri(settings.logo) if settings.logo else None,
    )


def _data_uri(path: Path) -> str:
    return f"data:{logo_type(path)};base64," + base64.b64encode(path.read_bytes()).decode()
