"""Ray's token authentication for the embedded Ray: the mode stated explicitly, and a token file only its owner can
read (moved out of :mod:`repeval.ray_utils`, which re-exports every name; log lines still name that module)."""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from pathlib import Path

log = logging.getLogger("repeval.ray_utils")

#: the variable that holds Ray's authentication mode (``token``, ``disabled``)
AUTH_MODE_ENV = "RAY_AUTH_MODE"
#: where Ray 2.60 looks for a token before ``~/.ray/auth_token``: a token given either way is the user's business
AUTH_TOKEN_ENVS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def prepare_token_auth(env: MutableMapping[str, str] | None = None, home: Path | None = None) -> Path | None:
    """Before an embedded Ray starts: token authentication as Ray 2.60's default has it, stated explicitly, and a
    token only its owner can read; returns the token file it created, if any.

    With ``RAY_AUTH_MODE`` unset, Ray turns token authentication on for a new local instance and logs a WARNING
    saying so on every start (that ``RAY_AUTH_MODE=disabled`` opts out); set to ``token`` here, the mode is the
    same and Ray says nothing. A user's explicit mode (``disabled`` for ``make test``) is left alone. When
    no token exists yet (none in ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``, no ``~/.ray/auth_token``), one is
    written here as Ray would write it (256 random bits, hex) but created with mode 0600 — Ray creates it with
    the process umask (0644 under 022), readable by every local user until :func:`restrict_token_file` ran."""
    import secrets

    this_process = env is None
    env = os.environ if env is None else env
    if AUTH_MODE_ENV not in env:
        env[AUTH_MODE_ENV] = "token"
        if this_process:  # what Ray does when it turns the mode on itself: its cached config reads it again
            from ray._raylet import Config  # type: ignore[attr-defined]  # (a Cython module without stubs)

            Config.initialize("")
    if env[AUTH_MODE_ENV].lower() != "token" or any(env.get(k) for k in AUTH_TOKEN_ENVS):
        return None
    path = (home or Path.home()) / ".ray" / "auth_token"
    if path.exists():
        return None
    tmp = path.with_name(f".auth_token.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp.unlink(missing_ok=True)  # left by a process of this pid that died here
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        os.link(tmp, path)  # whole, and never over a token that appeared meanwhile (another run's)
    except FileExistsError:
        return None
    except OSError as exc:  # Ray generates it then (and restrict_token_file makes it private afterwards)
        log.warning("could not create Ray's token file %s (%s); Ray will write it", path, exc)
        return None
    finally:
        tmp.unlink(missing_ok=True)
    if this_process:  # a token lookup earlier in this process (a previous Ray) may have cached "none"
        from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]

        AuthenticationTokenLoader.instance().reset_cache()
    log.info("created Ray's authentication token %s (readable by its owner only)", path)
    return path


def restrict_token_file(path: Path | None = None) -> bool:
    """Make Ray's authentication token file readable by its owner only; True when the mode changed.

    Ray 2.60 generates ``~/.ray/auth_token`` on a machine's first token-authenticated start and writes it
    with the process umask (mode 0644 here): any local user could read it and run code on this user's Ray
    instances, whose ports listen on every interface (docs/SECURITY.md). Called after every ``init_ray``
    for a token written before repeval created its own (:func:`prepare_token_auth`) or by ``ray start``;
    a file another user owns, or one already private, is left alone."""
    p = path or Path.home() / ".ray" / "auth_token"
    try:
        st = p.stat()
    except OSError:  # no token (authentication off, or a token given through RAY_AUTH_TOKEN)
        return False
    if st.st_uid != os.getuid() or not st.st_mode & 0o077:
        return False
    try:
        p.chmod(0o600)
    except OSError as exc:
        log.warning("could not make %s private (%s): chmod 600 it by hand", p, exc)
        return False
    log.info("made Ray's token file %s readable by its owner only", p)
    return True
