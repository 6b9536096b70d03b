"""Fixtures for GitOps tests: real Flux controllers (source-controller, kustomize-controller) and a
git server over HTTP, so a test proves that a commit reaches the cluster.

The controllers are built once from Go modules into the project's cache (see
tests/support/flux.py; the first build takes minutes, later runs none) and run for the whole
session against the session's API server (`kube_cluster`), after the Flux CRDs are server-side
applied. Tests delete the Flux objects they create before the session ends: those carry finalizers
that only the running controllers remove.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import flux as flux_controllers
from tests.support import gitserver, kubeapi

from ..conftest import install_crds


@pytest.fixture(scope="session")
def flux(kube_cluster: kubeapi.KubeCluster | None, kubeconfig: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[flux_controllers.FluxControllers]:
    """source-controller and kustomize-controller reconciling the cluster under test."""
    flux_controllers.ensure_binaries()
    install_crds(kubeconfig, flux_controllers.crd_documents())
    with flux_controllers.start(tmp_path_factory.mktemp("flux"), kubeconfig) as controllers:
        yield controllers


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gitserver.GitServer]:
    """A git server over HTTP on a free loopback port; create repositories under its `root`."""
    with gitserver.serve(tmp_path_factory.mktemp("git")) as server:
        yield server
