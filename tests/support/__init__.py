"""What the tests and benchmarks start besides provisioner itself, kept out of the wheel.

- `kubeapi`: a real kube-apiserver, etcd and controller-manager built from Go modules;
- `flux`: the Flux source- and kustomize-controllers, built the same way;
- `gitserver`: a git server over HTTP, the GitOps source Flux clones from;
- `gobuild`: building Go binaries into the cache, and `daemons`: stopping what they start, shared
  by the two above.

`python -m tests.support.kubeapi build` and `python -m tests.support.flux build` (run from the
repository's root) build the binaries up front; the test command does.
"""
