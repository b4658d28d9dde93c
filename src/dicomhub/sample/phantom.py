"""Synthetic pixel content: simple anatomy-like shapes, never real images.

Shapes are cheap analytic ellipses so a 64x64 test sample renders in milliseconds while a
512x512 one still looks like a body in a viewer.
"""

from __future__ import annotations

import numpy as np

_GLYPH_ROWS = 7
_GLYPH_COLS = 5


def _ellipse(rows: int, cols: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Boolean mask of an ellipse given in fractions of the image size."""
    y, x = np.ogrid[:rows, :cols]
    inside: np.ndarray = ((y / rows - cy) / ry) ** 2 + ((x / cols - cx) / rx) ** 2 <= 1.0
    return inside


def liver_mask(rows: int, cols: int, fraction: float) -> np.ndarray:
    """Where the 'liver' is on a slice at ``fraction`` (0 head .. 1 feet) of the scan."""
    if not 0.3 <= fraction <= 0.9:
        return np.zeros((rows, cols), dtype=bool)
    size = 0.16 * (1.0 - abs(fraction - 0.6) / 0.45)
    return _ellipse(rows, cols, 0.52, 0.34, size, size * 1.3)


def ct_slice(rows: int, cols: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Hounsfield units of a torso-like slice with lungs, spine and liver, plus noise."""
    hu = np.full((rows, cols), -1000.0)
    hu[_ellipse(rows, cols, 0.5, 0.5, 0.36, 0.45)] = -90.0
    hu[_ellipse(rows, cols, 0.5, 0.5, 0.33, 0.42)] = 40.0
    if fraction < 0.3:
        for cx in (0.32, 0.68):
            hu[_ellipse(rows, cols, 0.45, cx, 0.2 * (1 - fraction), 0.12)] = -820.0
    hu[liver_mask(rows, cols, fraction)] = 65.0
    hu[_ellipse(rows, cols, 0.75, 0.5, 0.06, 0.05)] = 700.0
    hu += rng.normal(0.0, 12.0, hu.shape)
    clipped: np.ndarray = np.clip(np.rint(hu), -1024, 3071)
    return clipped


def mr_slice(rows: int, cols: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Signal of a head-like slice: skull ring, brain and ventricles."""
    sig = np.zeros((rows, cols))
    scale = 1.0 - 0.5 * abs(fraction - 0.5)
    sig[_ellipse(rows, cols, 0.5, 0.5, 0.42 * scale, 0.36 * scale)] = 300.0
    sig[_ellipse(rows, cols, 0.5, 0.5, 0.38 * scale, 0.32 * scale)] = 900.0
    for cx in (0.44, 0.56):
        sig[_ellipse(rows, cols, 0.47, cx, 0.1 * scale, 0.03)] = 250.0
    sig += np.abs(rng.normal(0.0, 20.0, sig.shape))
    return np.clip(np.rint(sig), 0, 4095)


def pt_slice(rows: int, cols: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Activity concentration (Bq/ml) with background, 'liver' uptake and one hot lesion."""
    act = np.zeros((rows, cols))
    act[_ellipse(rows, cols, 0.5, 0.5, 0.36, 0.45)] = 2500.0
    act[liver_mask(rows, cols, fraction)] = 6000.0
    if 0.4 <= fraction <= 0.6:
        act[_ellipse(rows, cols, 0.4, 0.62, 0.05, 0.05)] = 30000.0
    act += np.abs(rng.normal(0.0, 300.0, act.shape))
    return act


def _glyph(char: str) -> np.ndarray:
    """A text-looking 5x7 block for a character (stable pattern, not a real font)."""
    if char == " ":
        return np.zeros((_GLYPH_ROWS, _GLYPH_COLS), dtype=bool)
    bits = (ord(char) * 2654435761) & 0xFFFFFFFF
    cells = np.array([(bits >> i) & 1 for i in range(_GLYPH_ROWS * _GLYPH_COLS)], dtype=bool)
    glyph = cells.reshape(_GLYPH_ROWS, _GLYPH_COLS)
    glyph[:, 0] |= True
    return glyph


def burn_text(image: np.ndarray, lines: list[str], value: int = 255) -> None:
    """Burn a white band with text-like glyphs into the top of ``image`` in place."""
    rows, cols = image.shape[:2]
    scale = max(1, cols // 320)
    line_height = (_GLYPH_ROWS + 2) * scale
    band = min(rows // 3, line_height * len(lines) + 2 * scale)
    image[:band] = value // 6
    image[band - max(1, scale) : band] = value
    for number, line in enumerate(lines):
        top = scale + number * line_height
        for position, char in enumerate(line):
            left = scale + position * (_GLYPH_COLS + 1) * scale
            if left + _GLYPH_COLS * scale > cols or top + _GLYPH_ROWS * scale > band:
                break
            glyph = np.kron(_glyph(char), np.ones((scale, scale), dtype=bool))
            region = image[top : top + glyph.shape[0], left : left + glyph.shape[1]]
            region[glyph] = value


def ultrasound(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Grey speckle sector with a dark 'vessel', as RGB uint8."""
    y, x = np.ogrid[:rows, :cols]
    apex_x = cols / 2
    angle = np.abs(np.arctan2(x - apex_x, y + 1))
    radius = np.hypot(x - apex_x, y)
    sector = (angle < 0.7) & (radius < rows * 0.95)
    grey = rng.gamma(2.0, 40.0, (rows, cols)) * sector
    grey[_ellipse(rows, cols, 0.6, 0.5, 0.06, 0.12)] *= 0.15
    mono = np.clip(grey, 0, 255).astype(np.uint8)
    return np.repeat(mono[:, :, None], 3, axis=2)
