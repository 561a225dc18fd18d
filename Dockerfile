# hpsearch: API server and workers in one CPU image.
#   docker build -t hpsearch .
#   docker run -p 8000:8000 -v hps-data:/data hpsearch          # API on SQLite, no local workers
#   docker exec CONTAINER hpsearch keys create admin --admin     # an API key (HPS_AUTH=on here)
#   docker run hpsearch hpsearch worker --device cpu             # a worker (set HPS_DATABASE_URL)
# docker-compose.yml runs PostgreSQL + api + a scalable worker service from this image.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Non-root runtime user; /data holds the default SQLite database (compose uses PostgreSQL).
RUN groupadd --system --gid 10001 hps \
    && useradd --system --uid 10001 --gid hps --create-home --home-dir /home/hps hps \
    && mkdir -p /data \
    && chown hps:hps /data

WORKDIR /app

# torch first, pinned, CPU-only index: its own layer, so code changes never reinstall it and
# the project install below finds torch==2.13.0 already satisfied (no CUDA wheels pulled).
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# Then the light client (`hpsearch agent` runs from it; no dependencies of its own) and the
# project itself (its other dependencies come from PyPI).
COPY pyproject.toml README.md ./
COPY client/ client/
COPY service/ service/
COPY models/ models/
COPY search/ search/
COPY migrations/ migrations/
RUN pip install --no-cache-dir ./client . \
    && rm -rf build ./*.egg-info client/build client/*.egg-info \
    && python -c "import torch; assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__"

USER hps

ENV HPS_HOST=0.0.0.0 \
    HPS_AUTH=on \
    HPS_PORT=8000 \
    HPS_DATABASE_URL=sqlite:////data/hpsearch.db

EXPOSE 8000

# python:3.11-slim has no curl: probe /health with the standard library (503 or no answer = 1).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=3).status == 200 else 1)"

STOPSIGNAL SIGTERM

CMD ["hpsearch", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "0"]
