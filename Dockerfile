# The Paygent application image: API, worker, and the migrate / provision jobs of docker-compose.yml.
# Development does not need it (`make up` runs everything as local processes).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PAYGENT_HOME=/var/lib/paygent

WORKDIR /app

# Dependencies first, so this layer is reused while only the code changes.
COPY pyproject.toml README.md ./
RUN mkdir paygent && touch paygent/__init__.py && pip install -e . && rm -rf paygent

# The code, installed in place (editable): paygent.paths finds contracts/, migrations/ and alembic.ini
# beside the packages, and the `temporal` and `vyper` CLIs beside the interpreter.
COPY alembic.ini ./
COPY migrations ./migrations
COPY contracts ./contracts
COPY paygent ./paygent
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY api ./api
RUN pip install --no-deps -e . \
 && useradd --system --home-dir /app paygent \
 && mkdir -p "$PAYGENT_HOME" && chown paygent "$PAYGENT_HOME"

USER paygent
EXPOSE 8000
CMD ["paygent", "api", "--host", "0.0.0.0", "--port", "8000"]
