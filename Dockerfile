# Refract's image (docs/operations.md). Targets:
#   production (the default): `refract run` on a config given by mount or environment; it
#     refuses to start without an origin, and on the demo's. EXTRAS picks the roles installed:
#     all (default), edge (proxy nodes: `refract proxy`, no scipy/scikit-learn/pyarrow/plotly),
#     worker or admin.
#   demo: the Northbeam demo website with Refract in front (`refract demo`).
#
#   docker build -t refract .
#   docker build -t refract-edge --build-arg EXTRAS=edge .
#   docker build -t refract-demo --target demo .
#
# Everything the processes write is under /data (state, metrics, archive, the rules the admin
# edits); the application in /opt/refract belongs to root and is read-only to them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: one virtual environment, from the pinned versions in constraints.txt ---------------
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=all
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY proxy ./proxy
COPY rules ./rules
COPY analytics ./analytics
COPY admin ./admin
COPY refract ./refract
RUN python -m venv /opt/refract \
    && /opt/refract/bin/pip install -c constraints.txt ".[${EXTRAS}]" \
    && /opt/refract/bin/pip uninstall -y pip

# --- runtime: what every target shares --------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/refract/bin:$PATH
# A fixed, numeric, unprivileged user: file ownership on volumes means the same on every host.
RUN groupadd --system --gid 10001 refract \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin refract \
    && mkdir -p /data/rules \
    && chown -R 10001:10001 /data
COPY --from=build /opt/refract /opt/refract
WORKDIR /data
VOLUME ["/data"]

# --- demo: the demo website and its rules, Refract in front -----------------------------------
FROM runtime AS demo
COPY examples/demo-site /opt/refract-demo/demo-site
COPY examples/demo-accounts.csv examples/demo-outcomes.csv examples/demo-spend.csv /opt/refract-demo/data/
COPY config.toml /opt/refract-demo/config.toml
COPY --chown=10001:10001 examples/demo-rules /data/rules
# The demo's config.toml, reachable from the host: the proxy and the dashboard on the
# container's interface (the dashboard answers localhost only), state and rules under /data.
ENV REFRACT_CONFIG=/opt/refract-demo/config.toml \
    REFRACT_DEMO_SITE=/opt/refract-demo/demo-site \
    REFRACT_DEMO_DATA=/opt/refract-demo/data \
    REFRACT_SERVER__DATA_DIR=/data \
    REFRACT_SERVER__LISTEN='["0.0.0.0:8080"]' \
    REFRACT_ADMIN__LISTEN=0.0.0.0:8090 \
    REFRACT_ADMIN__ALLOWED_HOSTS='["localhost", "127.0.0.1"]' \
    REFRACT_RULES__DIRECTORY=/data/rules
USER 10001:10001
EXPOSE 8080 8090
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s \
    CMD ["python", "-m", "refract.admin.probe", "proxy"]
ENTRYPOINT ["refract"]
CMD ["demo"]

# --- production (the default target) ---------------------------------------------------------
FROM runtime AS production
COPY deploy/config.toml /etc/refract/config.toml
ENV REFRACT_CONFIG=/etc/refract/config.toml
USER 10001:10001
EXPOSE 8080
# Readiness: configuration loaded, Redis reachable, an origin answering (proxy/readiness.py).
# Liveness, for an orchestrator that restarts containers: GET /_refract/health.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s \
    CMD ["python", "-m", "refract.admin.probe", "proxy"]
ENTRYPOINT ["refract"]
CMD ["run"]
