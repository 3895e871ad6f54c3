"""Postgres and Redis: the machine's own when they answer, otherwise private servers from system binaries.

The machine's servers are used, never managed: `down` does not touch them. A private server lives under
`.paygent/` on its own port (54329 / 63799 by default) and is stopped by `down`. `make test` calls these
two functions too (`paygent stack infra`), so the tests get the same database and cache as the stack.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from paygent.stack import processes
from paygent.stack.config import HOST, StackConfig
from paygent.stack.processes import Piece, StackError


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def plain_pg_url(url: str) -> str:
    """`postgresql+asyncpg://...` -> `postgresql://...` (what asyncpg and psql take)."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def _with_db(url: str, db: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


async def pg_state(url: str) -> str:
    """'ok', 'missing-db', 'unreachable', or 'refused: <reason>' (auth and the like)."""
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=3)
    except asyncpg.InvalidCatalogNameError:
        return "missing-db"
    except (TimeoutError, OSError):
        return "unreachable"
    except Exception as exc:  # an answering server that will not let us in
        return f"refused: {type(exc).__name__}: {exc}"
    await conn.close()
    return "ok"


async def _pg_create_db(url: str) -> None:
    import asyncpg

    db = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(_with_db(url, "postgres"), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{db}"')
    except asyncpg.DuplicateDatabaseError:
        pass
    finally:
        await conn.close()


def _pg_usable(url: str) -> str:
    """Make sure the database in `url` exists when its server answers; returns the final check result."""
    state = asyncio.run(pg_state(url))
    if state == "missing-db":
        try:
            asyncio.run(_pg_create_db(url))
        except Exception as exc:  # e.g. a role without CREATEDB
            return f"refused: cannot create the database: {type(exc).__name__}: {exc}"
        state = asyncio.run(pg_state(url))
    return state


def ensure_database(url: str) -> None:
    """For a server that runs elsewhere (compose): it must answer; our database is created if missing."""
    state = _pg_usable(url)
    if state != "ok":
        raise StackError(f"Postgres at {redact(url)}: {state}")


def private_postgres_url(cfg: StackConfig) -> str:
    db = urlsplit(plain_pg_url(cfg.database_url)).path.lstrip("/") or "paygent"
    return f"postgresql://postgres@{HOST}:{cfg.postgres_port}/{db}"


def ensure_postgres(cfg: StackConfig) -> tuple[Piece, str]:
    """A Postgres with our database: ours if already running, else DATABASE_URL, else a private server."""
    own = processes.running(cfg, "postgres")
    if own is not None:
        url = _with_db(own.extra["url"], urlsplit(private_postgres_url(cfg)).path.lstrip("/"))
        if _pg_usable(url) != "ok":
            raise processes.failure("Postgres (private)", "running but not accepting connections", own.log)
        return Piece.ours(own), url
    url = plain_pg_url(cfg.database_url)
    state = _pg_usable(url)
    if state == "ok":
        return Piece("postgres", True, "external", redact(url)), url
    # Nothing there, or a server that will not let us in (a fresh Debian install wants a password over TCP):
    # either way a private server gives the stack a database it controls.
    rec = _start_private_postgres(cfg, reason=f"{redact(url)}: {state}")
    url = private_postgres_url(cfg)
    if _pg_usable(url) != "ok":
        raise processes.failure("Postgres (private)", "started but not accepting connections", rec.log)
    note = f"{redact(cfg.database_url)} {state}" if state.startswith("refused") else ""
    return Piece.ours(rec, note=note), url


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    """Postgres refuses to run as root: run its tools as the `postgres` user then."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(  # noqa: B904  (the KeyError says nothing more)
            "Postgres refuses to run as root and there is no `postgres` user: "
            "install the server package (`apt-get install postgresql`) or run as a normal user"
        )
    return ["runuser", "-u", "postgres", "--", *cmd]


def _pg_data_dir(cfg: StackConfig) -> Path:
    """`.paygent/postgres`, unless we are root and user postgres cannot reach it (a checkout under /root): then a
    directory in postgres's home (else /var/tmp) named after this PAYGENT_HOME, so a restart finds it again."""
    if os.geteuid() != 0:
        return cfg.postgres_dir
    cfg.home.mkdir(parents=True, exist_ok=True)
    if subprocess.run(_as_postgres(["test", "-x", str(cfg.home)]), capture_output=True, cwd="/").returncode == 0:
        return cfg.postgres_dir
    digest = hashlib.sha256(str(cfg.home.resolve()).encode()).hexdigest()[:12]
    base = next(p for p in (Path(pwd.getpwnam("postgres").pw_dir), Path("/var/tmp")) if p.is_dir())
    return base / f"paygent-{digest}"


def _start_private_postgres(cfg: StackConfig, *, reason: str) -> processes.Record:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise StackError(
            f"Postgres: nothing usable at {reason}, and no PostgreSQL server binaries to start a "
            "private one. Install them (Debian/Ubuntu: `apt-get install postgresql`) or set "
            "DATABASE_URL to a server that answers."
        )
    data = _pg_data_dir(cfg)
    log = data / "server.log"
    data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        data.chmod(0o700)
        probe = subprocess.run(_as_postgres(["test", "-w", str(data)]), capture_output=True, cwd="/")
        if probe.returncode != 0:
            raise StackError(
                f"Postgres (private): user postgres cannot reach {data}; make its parent "
                "directories traversable (chmod o+x) or set PAYGENT_HOME elsewhere"
            )
    if not (data / "PG_VERSION").exists():
        init = subprocess.run(
            _as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
            capture_output=True,
            text=True,
            cwd="/",
        )
        if init.returncode != 0:
            raise StackError(f"Postgres (private): initdb failed in {data}:\n{init.stderr.strip()[-2000:]}")
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# paygent stack: a private dev server, speed over durability\n"
                "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
            )
    started = subprocess.run(
        _as_postgres(
            [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", f"-p {cfg.postgres_port}", "start"]
        ),
        capture_output=True,
        text=True,
        start_new_session=True,
        cwd="/",
    )
    if started.returncode != 0:
        raise processes.failure("Postgres (private)", started.stdout.strip()[-500:] or "pg_ctl start failed", log)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    return processes.remember(
        cfg,
        "postgres",
        pid,
        address=f"{HOST}:{cfg.postgres_port}",
        log=log,
        url=private_postgres_url(cfg),
        pgdata=str(data),
        pg_ctl=pg_ctl,
    )


def stop_postgres(cfg: StackConfig) -> bool:
    """Stop our private Postgres (fast shutdown); never the machine's."""
    own = processes.running(cfg, "postgres")
    if own is None:
        return False
    subprocess.run(
        _as_postgres([own.extra["pg_ctl"], "-D", own.extra["pgdata"], "-m", "fast", "-w", "stop"]),
        capture_output=True,
        timeout=90,
        cwd="/",
    )
    processes.stop(cfg, "postgres")  # removes the pidfile; signals only if pg_ctl did not finish
    return True


def redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def ensure_redis(cfg: StackConfig) -> tuple[Piece, str]:
    """A Redis: ours if already running, else REDIS_URL when it answers, else a private `redis-server`."""
    own = processes.running(cfg, "redis")
    if own is not None:
        return Piece.ours(own), own.extra["url"]
    if redis_answers(cfg.redis_url):
        return Piece("redis", True, "external", redact(cfg.redis_url)), cfg.redis_url
    binary = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).exists()), None
    )
    if binary is None:
        raise StackError(
            f"Redis: nothing answers at {redact(cfg.redis_url)} and `redis-server` is not "
            "installed. Install it (Debian/Ubuntu: `apt-get install redis-server`) or set REDIS_URL."
        )
    cfg.redis_dir.mkdir(parents=True, exist_ok=True)
    url = f"redis://{HOST}:{cfg.redis_port}/0"
    proc, rec = processes.start(
        cfg,
        "redis",
        [
            binary,
            "--port",
            str(cfg.redis_port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(cfg.redis_dir),
        ],
        address=f"{HOST}:{cfg.redis_port}",
    )
    processes.wait_until(lambda: redis_answers(url), piece="Redis (private)", log=rec.log, timeout=20, proc=proc)
    rec = processes.remember(cfg, "redis", proc.pid, address=rec.address, log=Path(rec.log), url=url)
    return Piece.ours(rec), url
