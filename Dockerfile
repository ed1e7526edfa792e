# One image for the three workers and the migrate one-shot; compose.yaml picks the side with
# `dualwrite worker <side>`, and checks health with `dualwrite health --side <side>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY shared ./shared
COPY workers ./workers
RUN pip install .

RUN useradd --system --uid 10001 --home-dir /app dualwrite \
    && mkdir -p /app/.dualwrite/keys && chown -R dualwrite /app/.dualwrite
USER dualwrite

CMD ["dualwrite", "--help"]
