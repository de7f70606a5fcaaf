"""Placeholder router, filled in by the contracts, runs, live and stats API work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
