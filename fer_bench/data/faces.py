"""The synthetic dataset's renderer (:mod:`fer_bench.data.loaders.synthetic`): faces
drawn with torch, vectorised over images, in a module of their own so that loading
the dataset loaders imports no torch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fer_bench.expressions import FER2013_ORDER

# Facial action parameters per class: brow raise, brow tilt (inner end up > 0),
# eye opening, mouth curve (smile > 0), mouth opening, mouth width, nose wrinkle;
# rows in FER2013 order, the synthetic dataset's classes.
ACTIONS = torch.tensor(
    [
        [-0.05, -1.0, 0.70, -0.25, 0.00, 0.85, 0.4],  # anger
        [-0.03, -0.5, 0.55, -0.55, 0.20, 0.95, 1.0],  # disgust
        [0.08, 0.9, 1.40, -0.30, 0.45, 1.15, 0.0],  # fear
        [0.00, 0.0, 0.80, 1.00, 0.30, 1.25, 0.0],  # happiness
        [0.00, 1.0, 0.75, -0.90, 0.00, 0.90, 0.0],  # sadness
        [0.12, 0.3, 1.45, 0.00, 0.90, 0.70, 0.0],  # surprise
        [0.00, 0.0, 1.00, 0.00, 0.00, 1.00, 0.0],  # neutral
    ]
)


def _soft(dist: torch.Tensor, sharpness: float = 40.0) -> torch.Tensor:
    """Anti-aliased inside indicator from a signed distance (negative inside)."""
    return torch.sigmoid(-dist * sharpness)


def _segment_distance(
    px: torch.Tensor,
    py: torch.Tensor,
    ax: torch.Tensor,
    ay: torch.Tensor,
    bx: torch.Tensor,
    by: torch.Tensor,
) -> torch.Tensor:
    dx, dy = bx - ax, by - ay
    t = (((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)).clamp(0, 1)
    return torch.hypot(px - ax - t * dx, py - ay - t * dy)


def render_faces(actions: torch.Tensor, gen: torch.Generator, size: int = 48) -> torch.Tensor:
    """Render one face per row of ``actions`` (N, 7); returns float (N, size, size) in [0, 1]."""
    n = actions.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).view(n, 1, 1)

    brow_raise, brow_tilt, eye_open, curve, mouth_open, mouth_w, wrinkle = (
        actions[:, i].view(n, 1, 1) for i in range(7)
    )
    # Pose: image coordinates -> face coordinates (inverse similarity transform).
    angle = u(-0.2, 0.2)
    scale = u(0.88, 1.1)
    shift_x, shift_y = u(-0.09, 0.09), u(-0.09, 0.09)
    lin = torch.linspace(-1, 1, size)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    gx, gy = gx - shift_x, gy - shift_y
    cos, sin = torch.cos(angle), torch.sin(angle)
    x = (cos * gx + sin * gy) / scale
    y = (-sin * gx + cos * gy) / scale
    # Identity.
    face_w, face_h = u(0.6, 0.76), u(0.8, 0.94)
    skin, background = u(0.5, 0.85), u(0.05, 0.4)
    eye_dx, eye_y = u(0.26, 0.34), u(-0.24, -0.12)
    mouth_y = u(0.36, 0.5)
    ink = u(0.08, 0.25)  # darkness of facial features

    face = _soft(torch.sqrt((x / face_w) ** 2 + (y / face_h) ** 2) - 1.0, 25.0)
    img = background + (skin - background) * face
    ax = x.abs()  # features are mirror-symmetric
    eye_h = 0.065 * eye_open
    eyes = _soft(torch.sqrt(((ax - eye_dx) / 0.1) ** 2 + ((y - eye_y) / eye_h) ** 2) - 1.0, 12.0)
    brow_y = eye_y - 0.14 - brow_raise
    brow_dy = 0.06 * brow_tilt  # inner end up when tilt > 0
    brows = _soft(
        _segment_distance(ax, y, eye_dx - 0.11, brow_y - brow_dy, eye_dx + 0.11, brow_y + brow_dy)
        - 0.028
    )
    half_w = 0.22 * mouth_w
    xm = (x / half_w).clamp(-1, 1)
    inside_w = _soft(x.abs() - half_w, 60.0)
    centre = mouth_y - curve * 0.1 * (xm**2 - 0.4)
    gap = 0.17 * mouth_open * (1 - xm**2)
    lips = inside_w * _soft((y - centre - gap / 2).abs() - gap / 2 - 0.022)
    nose = _soft(
        _segment_distance(ax, y, 0.0 * ax, 0.02 + 0 * y, 0.06 + 0 * ax, 0.18 + 0 * y) - 0.012
    )
    folds = wrinkle * _soft(
        _segment_distance(ax, y, 0.08 + 0 * ax, 0.05 + 0 * y, 0.16 + 0 * ax, 0.22 + 0 * y) - 0.015
    )
    features = (eyes + brows + lips + 0.35 * nose + 0.8 * folds).clamp(0, 1) * face
    img = img + (ink - img) * features
    # Lighting gradient across the face, then sensor noise.
    light_angle = u(0, 2 * math.pi)
    img = img * (1 + u(0, 0.35) * (torch.cos(light_angle) * gx + torch.sin(light_angle) * gy))
    img = img + u(0.02, 0.07) * torch.randn(img.shape, generator=gen)
    return img.clamp(0, 1)


def render_blends(
    primary: np.ndarray,
    secondary: np.ndarray,
    weight: np.ndarray,
    intensity: np.ndarray,
    seed: int,
    size: int,
) -> np.ndarray:
    """uint8 (N, 1, size, size): each face's expression ``weight`` of its primary class
    and the rest of its secondary, at ``intensity`` from neutral; identity, pose,
    lighting and noise drawn from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    n = len(primary)
    w = torch.from_numpy(weight).float().view(n, 1)
    blend = w * ACTIONS[primary] + (1 - w) * ACTIONS[secondary]
    neutral = ACTIONS[FER2013_ORDER.index("neutral")]
    actions = neutral + torch.from_numpy(intensity).float().view(n, 1) * (blend - neutral)
    chunks = [render_faces(a, gen, size) for a in actions.split(2048)]
    return (torch.cat(chunks) * 255).round().to(torch.uint8).unsqueeze(1).numpy()
