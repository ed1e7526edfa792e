# One image for the three workers; compose.yaml picks the side with `dualwrite worker <side>`.
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
COPY deploy/healthcheck.py ./deploy/healthcheck.py

RUN useradd --system --uid 10001 --home-dir /app dualwrite
USER dualwrite

CMD ["dualwrite", "--help"]
