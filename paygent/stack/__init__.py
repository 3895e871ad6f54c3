"""`paygent stack up|down|status`: the local dev stack as plain processes, no Docker.

Layout:
- `config`    which ports and URLs this stack uses (env, then options, then defaults);
- `processes` pidfiles under `.paygent/run/`, logs under `.paygent/logs/`, start detached, stop only our own;
- `services`  Postgres and Redis: the machine's when they answer, else private servers (also `make test`'s);
- `servers`   the Temporal dev server (+ Web UI, search attributes) and anvil;
- `apps`      the worker and API processes;
- `provision` what runs against the pieces once they are up (migrations, key, token, seed, funding, dev.json);
- `stack`     the order of `up`, and `down` / `status`;
- `cli`       the typer commands.
"""
