# The flow server's image: `make image` (IMAGE=fedweave/fedweave:TAG, BASE_IMAGE=...).
#
# `make image` first puts wheels of the project and of its pinned dependencies (the
# versions of this checkout's .venv) in .image-wheels/; the build installs from those alone
# (pip --no-index), so it makes no network call: the same image behind a proxy, or where
# no package index is reachable. BASE_IMAGE is any Debian-like image with python3 (3.11,
# as the wheels) and its venv module: python:3.11-slim by default, a local debootstrap of
# bookworm in the tests (tests/services_docker.sh).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG EXTRAS=server,rabbitmq,postgresql
COPY .image-wheels/ /wheels/
RUN python3 -m venv /opt/fedweave \
 && /opt/fedweave/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
        --find-links /wheels "fedweave[${EXTRAS}]" \
 && /opt/fedweave/bin/pip uninstall -q -y pip \
 && find /opt/fedweave -depth -type d -name tests -path '*/site-packages/*/tests' -exec rm -rf {} +

FROM ${BASE_IMAGE}
# the server runs as this user; its home (store, keys, tables, models, logs) is the volume
RUN groupadd --system --gid 10001 fedweave \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/fedweave --no-create-home \
        --shell /usr/sbin/nologin fedweave \
 && mkdir -p /var/lib/fedweave && chown fedweave:fedweave /var/lib/fedweave && chmod 0700 /var/lib/fedweave
ENV PATH=/opt/fedweave/bin:$PATH FLOW_HOME=/var/lib/fedweave PYTHONUNBUFFERED=1
VOLUME ["/var/lib/fedweave"]
WORKDIR /var/lib/fedweave
EXPOSE 9380
# /healthz on the port the server wrote to <home>/server.json (the port is the party's own);
# the base image's python, as it may have no curl
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["python3", "-c", "import json, os, urllib.request; p = json.load(open(os.path.join(os.environ['FLOW_HOME'], 'server.json')))['port']; urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]
ENTRYPOINT ["flow", "server", "start"]
USER 10001:10001
# last: the settings above are each a layer, and a storage driver that copies layers whole
# (vfs) copies the small base for them, not the base and the virtualenv
COPY --from=build /opt/fedweave /opt/fedweave
