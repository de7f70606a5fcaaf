"""Annotations: marks and bands on charts (placeholder; filled in by the annotations work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
