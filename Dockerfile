# A small runnable image of Refract. Mount your config.toml at /app/config.toml (or set
# REFRACT_CONFIG) and keep /data, the data directory, on a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REFRACT_SERVER__DATA_DIR=/data \
    REFRACT_SERVER__LISTEN='["0.0.0.0:8080"]'

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY proxy ./proxy
COPY rules ./rules
COPY analytics ./analytics
COPY admin ./admin
COPY refract ./refract
COPY examples ./examples
COPY config.toml ./
RUN pip install --no-cache-dir -c constraints.txt -e . \
    && useradd --system --home-dir /data refract \
    && mkdir -p /data && chown refract /data

USER refract
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/_refract/health', timeout=2)"
ENTRYPOINT ["refract"]
CMD ["run"]
