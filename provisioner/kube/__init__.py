"""The Kubernetes side: the DataProduct CRD (generated from the spec model), the manifests of a
product's objects (rendered from the jinja2 templates in templates/) and their credentials.

Used by `provisioner render`, `provisioner crd` and the operator. Imports the plan, the spec and
the runtime's connection helpers; never `provisioner.local` (laptop-only code).
"""
