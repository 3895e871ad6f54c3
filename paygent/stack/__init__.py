"""`paygent stack up|down|status`: the local dev stack as plain processes, no Docker.

Layout:
- `config`    which ports and URLs this stack uses (env, then options, then defaults);
- `processes` pidfiles under `.paygent/run/`, logs under `.paygent/logs/`, start detached, stop only our own;
- `services`  one function per piece (Postgres, Redis, Temporal, anvil, worker, API);
- `provision` what runs against the pieces once they are up (migrations, key, token, seed, funding, dev.json);
- `stack`     the order of `up`, and `down` / `status`;
- `cli`       the typer commands.
"""
