from reconciler.cli import app

app(prog_name="reconciler")
