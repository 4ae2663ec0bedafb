"""The payledger API client."""

from __future__ import annotations
