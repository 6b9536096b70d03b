"""The Kubernetes side: the DataProduct CRD (generated from the spec model), the manifests of a
product's objects (`render`, from the jinja2 templates in templates/) and their credentials, a REST
client doing server-side apply (`client`, `kubeconfig`, `auth`), `reconcile` (named steps),
observation of stores and Kafka (`observe`) turned into conditions (`status`), and the commands'
cluster operations (`products`: apply, plan, wait, delete, summarize).

Used by `provisioner render|crd|apply|plan|status|delete` and the operator. Imports the plan, the
spec, the stores and Kafka's observer; never `provisioner.local` (laptop-only code).
"""
