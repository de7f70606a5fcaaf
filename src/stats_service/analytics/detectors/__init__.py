"""The detector catalogue: name → detector (docs/analytics.md). See base.py for the
interface every detector implements."""
