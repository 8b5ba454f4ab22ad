"""The digest as one JSON object (``herald digest --format json``)."""

from __future__ import annotations

import json
from typing import Any

from bot.models import Digest, ScoredPaper


def item_to_dict(item: ScoredPaper) -> dict[str, Any]:
    p = item.paper
    return {
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "authors": list(p.authors),
        "categories": list(p.categories),
        "announce_type": item.announce_type,
        "score": round(item.score, 3),
        "reasons": [r.as_dict() for r in item.reasons],
        "summary": item.summary,
        "summary_status": str(item.summary_status),
        "summary_note": item.summary_note,
        "summary_model": item.summary_model,
        "explore": item.explore,
        "url": p.url,
    }


def digest_to_dict(digest: Digest) -> dict[str, Any]:
    sub = digest.subscription
    return {
        "day": digest.day.isoformat(),
        "subscription": {
            "id": sub.id,
            "name": sub.label,
            "platform": sub.platform,
            "categories": list(sub.categories),
            "keywords": list(sub.keywords),
        },
        "candidates": digest.total_candidates,
        "items": [item_to_dict(i) for i in digest.items],
    }


def render_json(digest: Digest) -> str:
    return json.dumps(digest_to_dict(digest), ensure_ascii=False, indent=2)
