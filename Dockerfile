# The model-reloader image: `reloader` on Python 3.11, as a non-root user.
#
#   docker build -t my-registry/model-reloader:0.1.0 .                                  # Python handler
#   docker build --build-arg EXTRAS='[tensorflow]' -t my-registry/model-reloader-tf:0.1.0 .  # + TF client
#
# Your handler's own packages (Cortex's handler.dependencies is not read here) go into a derived image:
#
#   FROM my-registry/model-reloader:0.1.0
#   USER root
#   COPY requirements.txt /tmp/requirements.txt
#   RUN pip install --no-cache-dir -r /tmp/requirements.txt
#   COPY api/ /etc/reloader/api/        # optional: bake the spec and handler in instead of a ConfigMap
#   USER 10001:10001
#
# The install step is the one the tests use (`pip install` of this project, with its extras); the
# image itself is not built by the test suite (no container engine on the project's machines).
FROM python:3.11-slim

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/reloader \
    PATH=/opt/reloader/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent/ agent/
RUN python -m venv /opt/reloader \
    && pip install --no-cache-dir ".${EXTRAS}" \
    && rm -rf /src \
    && groupadd --gid 10001 reloader \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin reloader

WORKDIR /
USER 10001:10001
EXPOSE 8888
ENTRYPOINT ["reloader"]
CMD ["serve", "/etc/reloader/api/cortex.yaml", "--host", "0.0.0.0", "--port", "8888"]
