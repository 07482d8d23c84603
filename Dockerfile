# cryptocast on Ray's own Python 3.11 image: the Ray in the image is the Ray KubeRay starts, so it
# is pinned to the base image's version while the project is installed.
FROM rayproject/ray:2.60.0-py311-cpu

ARG RAY_VERSION=2.60.0
# fsspec's S3 backend, for a model store in object storage (same calendar version as fsspec)
ARG S3FS_VERSION=2026.9.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CRYPTOCAST_BIND_HOST=0.0.0.0 \
    CRYPTOCAST_MODE=prod

WORKDIR /home/ray/cryptocast
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 cryptocast ./cryptocast
RUN pip install --no-cache-dir . "ray[serve,tune]==${RAY_VERSION}" "s3fs==${S3FS_VERSION}"

# the base image's unprivileged "ray" user (uid 1000, group users 100)
USER 1000:100
EXPOSE 8000 8050
CMD ["cryptocast", "--help"]
