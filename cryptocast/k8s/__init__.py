"""Cluster deployment: rendering the ``k8s/`` manifests and the in-cluster ingestion entrypoint."""
