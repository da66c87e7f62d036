from churnwatch.cli import app

app()
