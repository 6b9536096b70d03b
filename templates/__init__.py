"""Jinja2 templates of the Kubernetes objects of a data product, installed as the package
`provisioner.templates` and rendered by `provisioner.kube.render` (for `provisioner render` and
the operator)."""
