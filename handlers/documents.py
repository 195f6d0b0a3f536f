"""Where an executed document is stored: a file name no external_id can steer elsewhere."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def document_file_name(external_id: str, extension: str = "pdf") -> str:
    """``{slug}-{hash}.{extension}``: a readable slug of the id plus 12 hex of its sha256.

    The slug keeps letters, digits, ``-`` and ``_`` only, so separators, ``..`` and
    leading dots cannot survive; the hash keeps two ids that slug alike apart.
    """
    slug = _UNSAFE.sub("-", external_id).strip("-_")[:60] or "contract"
    digest = hashlib.sha256(external_id.encode("utf-8")).hexdigest()[:12]
    suffix = _UNSAFE.sub("", extension.lower()) or "pdf"
    return f"{slug}-{digest}.{suffix}"
