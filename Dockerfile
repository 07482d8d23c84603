# cryptocast on Ray's own Python 3.11 image: the Ray in the image is the Ray KubeRay starts, so it
# is pinned to the base image's version while the project is installed.
FROM rayproject/ray:2.60.0-py311-cpu

ARG RAY_VERSION=2.60.0
# fsspec's S3 and GCS backends, for a model store in object storage: s3fs at fsspec's calendar
# version, gcsfs (the gcp extra) at a release that accepts that fsspec
ARG S3FS_VERSION=2026.9.0
ARG GCSFS_VERSION=2026.10.1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CRYPTOCAST_BIND_HOST=0.0.0.0 \
    CRYPTOCAST_MODE=prod

WORKDIR /home/ray/cryptocast
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 cryptocast ./cryptocast
RUN pip install --no-cache-dir . "ray[serve,tune]==${RAY_VERSION}" "s3fs==${S3FS_VERSION}" "gcsfs==${GCSFS_VERSION}"

# the base image's unprivileged "ray" user (uid 1000, group users 100)
USER 1000:100
EXPOSE 8000 8050
CMD ["cryptocast", "--help"]
