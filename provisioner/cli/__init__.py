"""The `provisioner` command: the typer app (`app`), options declared once (`options`), output
writers and the one error handler (`output`), and one thin module per command, each parsing its
options, calling one function of `provisioner.local` (laptop commands), `provisioner.kube` (cluster
commands) or the spec layer (offline commands) and handing the result to the output writer."""
