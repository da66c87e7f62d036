# churnwatch API image: `docker compose up` builds it and starts the API, an MLflow tracking
# server and (on demand) the retrain job. Installs exactly the pinned lock, into a virtual
# environment, so that any Debian bookworm base with Python 3.11 will do: the official
# python image by default, or (`make image`, where Docker Hub is out of reach) a bookworm root
# file system made locally with mmdebstrap.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CHURNWATCH_DATA_DIR=/data \
    PATH=/opt/venv/bin:$PATH

# LightGBM and XGBoost need the OpenMP runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 churnwatch \
    && useradd --system --uid 10001 --gid churnwatch --create-home churnwatch \
    && mkdir /data \
    && chown 10001:10001 /data

RUN python3 -m venv /opt/venv

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY pyproject.toml README.md app.py train.py ./
COPY src ./src
RUN pip install --no-deps .

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"]
