"""Model ids used by the mir_ref thesis, declared so configs naming them validate.

Issue 5 replaces each declaration with a real implementation in its own module; until then a
declared family reports why it cannot run (``repeval models`` shows the reason) and a run that
needs it stops before any compute with that reason.
"""

from __future__ import annotations

import re
from typing import Any

from repeval.models.base import EmbeddingModel, register_model


def _declare(name: str, reason: str, parse_id: Any = None) -> None:
    cls = type(
        name.replace("-", "_"),
        (EmbeddingModel,),
        {
            "description": f"thesis model {name} (not yet implemented in repeval)",
            "availability": classmethod(lambda cls, params: reason),
        },
    )
    register_model(name, parse_id=parse_id)(cls)


_NOT_YET = "not implemented yet (tracked in issue 5: embedding model zoo)"

for _name in ("vggish-audioset", "effnet-discogs", "msd-musicnn", "openl3", "neuralfp", "clmr-v2", "mule"):
    _declare(_name, _NOT_YET)


def _mert_id(model_id: str) -> dict[str, Any] | None:
    m = re.fullmatch(r"mert-v1-(95m|330m)((?:-\d+)*)", model_id)
    if not m:
        return None
    layers = [int(x) for x in m.group(2).split("-") if x]
    return {"size": m.group(1), "layers": layers or None}


_declare("mert-v1", _NOT_YET, parse_id=_mert_id)
