"""Forecast API (docs/analytics.md): being built; routes are added here."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
